"""Throughput: call creations per second on this one host, with the carrier answering each
creation in 300 ms and the dial limit set far above the target of 100 per second.

The workers use Celery's thread pool: a dial spends almost all its time waiting on the carrier
(300 ms) and a few milliseconds of CPU on the database and Redis, so threads wait cheaply where
processes would cost memory and a connection pool each. Two worker processes of 32 threads
each: 64 dials in flight cover 100/s at 300 ms (Little's law: 100 x 0.3 s = 30) with room for
the database steps, and two processes use both cores. A thread holds a database connection only
for its short transactions, never across the carrier's 300 ms, so the default pool of 20 a
process serves 32 threads. More threads do not help on two cores: 2 x 48 gave 99/s in a run
where 2 x 32 gave 120-132/s, the threads then waiting on each process's interpreter lock.

Three runs, each printing its figures:
- the dial path, one account's batch: the carrier accepts calls and plays no life (no TwiML
  fetch, no callbacks), so what is measured is the workers' creation rate;
- the dial path, four accounts' batches at once: the dispatcher claims each account's share of
  a window in its own step (its row locked, its lines counted, its credits reserved);
- the whole call life, one account: four signed callbacks and a TwiML fetch a call into the API,
  which shares the two cores with the workers, PostgreSQL and the carrier.

Each run twice, one after the other: without webhooks, then with each account's one endpoint
subscribed to everything and a receiver answering 200 at once in its own process (every status
change an event, each delivered by the webhook worker, which runs beside the two in both); the
ratio of the two rates is what the events and their
delivery cost, measured in the same run. The second also prints the deliveries' lag (from the
event's transaction to its arrival at the receiver), p50 and p99.

    .venv/bin/python -m benchmarks.throughput   # PostgreSQL on this machine by default; an
                                                # embedded Redis unless REDIS_URL is set
    .venv/bin/python -m benchmarks.throughput "whole call life"   # the scenarios named so
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from benchmarks.harness import Stack, numbers, owed
from benchmarks.receiver import Receiver, percentile
from shared import embedded_redis

TARGET, LATENCY_S, COUNT = 100, 0.3, 4000
WORKERS, THREADS = 2, 32


def _run(play_calls: bool, count: int, accounts: int, webhooks: bool) -> dict[str, float]:
    stack = Stack(
        workers=WORKERS,
        concurrency=THREADS,
        SANDBOX_LATENCY_MS=str(int(LATENCY_S * 1000)),
        SANDBOX_PLAY_CALLS=str(play_calls).lower(),
        DIAL_RATE_PER_SECOND="1000",
        DIAL_BURST="100",
        DISPATCH_WINDOW="400",
    )
    receiver = Receiver(stack.tmp) if webhooks else None
    try:
        stack.start()
        wanted = numbers(count, start=3_000_000)
        share = count // accounts
        batches = []
        for n in range(accounts):
            api = httpx.Client(
                base_url=stack.api_url, params={"apiKey": stack.account()}, timeout=120
            )
            api.post("/api/campaigns", json={"name": "bench", "script": "Hello {name}"})
            if receiver is not None:
                api.post("/api/webhook-endpoints", json={"url": receiver.url}).raise_for_status()
            rows = [
                {"clientName": "n", "clientNumber": x} for x in wanted[n * share : (n + 1) * share]
            ]
            batch = api.post(
                "/api/make_batch_toingg", json={"campaign": "bench", "numberList": rows}
            )
            batches.append((api, batch.json()["batchId"]))
        deadline = time.monotonic() + count / 10 + 60
        while time.monotonic() < deadline and any(owed(api, batch) for api, batch in batches):
            time.sleep(1)
        calls = [c for c in stack.carrier_calls() if c["to"] in set(wanted)]
        times = sorted(c["created_at"] for c in calls)
        # The steady state: leave out the start (workers warming up) and the tail.
        steady = times[len(times) // 10 : len(times) * 9 // 10]
        figures = {
            "calls": len(calls),
            "repeats": len(calls) - len({c["to"] for c in calls}),
            "per_second": (len(steady) - 1) / (steady[-1] - steady[0]),
        }
        if receiver is not None:
            figures.update(_delivered(stack.env["DATABASE_URL"], receiver))
        return figures
    finally:
        stack.stop()
        if receiver is not None:
            receiver.stop()


def _delivered(database_url: str, receiver: Receiver) -> dict[str, float]:
    """Once nothing is pending (the calls' last events come after their last dial): how many
    events there were, how many arrived, and their lag from the event's transaction."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + 60
    with engine.connect() as connection:
        pending = "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:
            quiet = quiet + 1 if connection.scalar(text(pending)) == 0 else 0
            time.sleep(1)
        written = dict(
            connection.execute(text("SELECT id, extract(epoch FROM created_at) FROM events")).all()
        )
    engine.dispose()
    arrived = receiver.arrivals()
    lags = [arrived[e][0] - float(t) for e, t in written.items() if e in arrived]
    return {
        "events": len(written),
        "arrived": len(lags),
        "lag_p50_s": percentile(lags, 0.5),
        "lag_p99_s": percentile(lags, 0.99),
    }


SCENARIOS = {
    "dial path, 1 account": {"play_calls": False, "count": COUNT, "accounts": 1},
    "dial path, 4 accounts": {"play_calls": False, "count": COUNT, "accounts": 4},
    "whole call life, 1 account": {"play_calls": True, "count": COUNT // 2, "accounts": 1},
}


def main() -> None:
    """Every scenario, or those whose names start with the arguments given."""
    chosen = [n for n in SCENARIOS if not sys.argv[1:] or n.startswith(tuple(sys.argv[1:]))]
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis, url = embedded_redis.start(Path(tempfile.mkdtemp()), persist=False)
        os.environ["REDIS_URL"] = url
    bound = WORKERS * THREADS / LATENCY_S
    print(
        f"carrier latency {LATENCY_S * 1000:.0f} ms, limit 1000/s, {WORKERS} worker processes "
        f"x {THREADS} threads (bound by latency: {bound:.0f}/s)",
        flush=True,
    )
    runs = {}
    try:
        for name in chosen:
            without = _run(**SCENARIOS[name], webhooks=False)
            print(f"{name:>27}: " + ", ".join(f"{k} {v:.1f}" for k, v in without.items()))
            webhooks = _run(**SCENARIOS[name], webhooks=True)
            print(
                f"{'with webhooks':>27}: " + ", ".join(f"{k} {v:.2f}" for k, v in webhooks.items()),
                flush=True,
            )
            runs[name] = (without, webhooks)
    finally:
        if redis is not None:
            redis.kill()
    print(
        "ratio to the target of 100/s: "
        + ", ".join(f"{name} {w['per_second'] / TARGET:.2f}" for name, (w, _) in runs.items())
    )
    print(
        "ratio with webhooks to without: "
        + ", ".join(
            f"{name} {h['per_second'] / w['per_second']:.2f}" for name, (w, h) in runs.items()
        )
    )


if __name__ == "__main__":
    main()
