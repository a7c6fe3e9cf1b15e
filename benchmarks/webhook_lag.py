"""Webhook delivery lag: 100 call events a second appended for 30 s (100 calls at a time, each
with an event a second in its order), one endpoint subscribed to everything, a receiver
that answers 200 at once; the lag of each event is from its commit to its arrival at the
receiver. Prints p50, p99 and the largest, whether every event arrived once, and the webhook
worker's CPU time per event (what the machine's load does not change much).

    .venv/bin/python -m benchmarks.webhook_lag   # PostgreSQL on this machine by default; an
                                                 # embedded Redis unless REDIS_URL is set
"""

import os
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.harness import Stack
from benchmarks.receiver import Receiver, percentile
from shared import embedded_redis

RATE, SECONDS = 100, 30
CALL_TYPES = (
    "call.queued", "call.dialing", "call.initiated", "call.ringing", "call.answered",
    "call.completed", "call.queued", "call.dialing", "call.initiated", "call.failed",
)  # fmt: skip


def produce(account_id: str) -> tuple[dict[str, float], float]:
    """Append RATE events a second for SECONDS, from a pool of threads: CALLS calls at a time,
    each with one event a second, in its order. Each event's commit time, and the rate
    reached."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.db import session_scope
    from shared.events import outbox
    from shared.models import new_id

    committed: dict[str, float] = {}
    calls = [new_id() for _ in range(RATE * SECONDS // len(CALL_TYPES))]
    started = time.monotonic()

    def append(n: int) -> None:
        # Each block of RATE calls lasts len(CALL_TYPES) seconds, an event of each a second.
        block, offset = divmod(n, RATE * len(CALL_TYPES))
        second, place = divmod(offset, RATE)
        call_id = calls[block * RATE + place]
        pause = started + n / RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        with session_scope() as session:
            event = outbox.append(
                session, account_id, CALL_TYPES[second], "call", call_id, {"id": call_id}
            )
        committed[event.id] = time.time()

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(append, range(RATE * SECONDS)))
    return committed, len(committed) / (time.monotonic() - started)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis, url = embedded_redis.start(Path(tempfile.mkdtemp()), persist=False)
        os.environ["REDIS_URL"] = url
    os.environ.setdefault("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    stack = Stack(workers=1, concurrency=16)
    receiver = Receiver(stack.tmp)
    try:
        stack.start()
        key = stack.account()
        api = httpx.Client(base_url=f"{stack.api_url}/api", params={"apiKey": key}, timeout=30)
        created = api.post("/webhook-endpoints", json={"url": receiver.url})
        created.raise_for_status()
        worker = stack.processes["webhooks"].pid
        cpu_before = cpu_seconds(worker)
        committed, rate = produce(_account_of(key))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(receiver.arrivals()) < len(committed):
            time.sleep(0.5)
        cpu = cpu_seconds(worker) - cpu_before
        arrived = receiver.arrivals()
        lags = [arrived[e][0] - t for e, t in committed.items() if e in arrived]
        repeats = sum(len(times) - 1 for times in arrived.values())
        print(
            f"{len(committed)} events at {rate:.0f}/s (asked {RATE}/s); arrived {len(lags)}, "
            f"again {repeats}; "
            f"lag p50 {percentile(lags, 0.5):.2f} s, p99 {percentile(lags, 0.99):.2f} s, "
            f"max {max(lags):.2f} s; "
            f"the webhook worker's CPU {1000 * cpu / max(1, len(lags)):.1f} ms an event"
        )
    finally:
        stack.stop()
        receiver.stop()
        if redis is not None:
            redis.kill()


def _account_of(key: str) -> str:
    from shared.accounts import service as accounts_service
    from shared.db import session_scope

    with session_scope() as session:
        api_key = accounts_service.active_key(session, key)
        assert api_key is not None
        return api_key.account_id


if __name__ == "__main__":
    main()
