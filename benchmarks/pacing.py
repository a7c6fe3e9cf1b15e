"""Pacing: a 2,000-number batch at a limit of 20 calls/s with 4 worker processes, against the
sandbox carrier. Prints the busiest sliding one-second window, both as the workers sent the
requests (each call's dialedAt) and as the carrier stamped their arrival, and the average rate
against the limit, the same run with Celery's per-task rate_limit instead of the shared bucket,
and the pause latency (from POST /pause to the last new call creation at the carrier).

    .venv/bin/python -m benchmarks.pacing      # PostgreSQL and Redis on this machine by default
"""

import bisect
import time
from collections import Counter

import httpx

from benchmarks.harness import Stack, dialed_at, numbers, owed

LIMIT, BURST, WORKERS, COUNT = 20, 2, 4, 2000


def _busiest_window(times: list[float]) -> int:
    """The most arrivals in any sliding one-second window (one starting at each arrival)."""
    return max(bisect.bisect_left(times, start + 1) - i for i, start in enumerate(times))


def _around(times: list[float], gap: tuple[float, float]) -> list[list[float]]:
    before = [t for t in times if t <= gap[0]]
    after = [t for t in times if t > gap[1]]
    return [before, after]


def _run(shared_bucket: bool) -> dict[str, float]:
    settings = (
        {"DIAL_RATE_PER_SECOND": str(LIMIT), "DIAL_BURST": str(BURST)}
        if shared_bucket
        else {"DIAL_RATE_PER_SECOND": "100000", "DIAL_BURST": "100000"}
    )
    # Four threads a worker: sixteen dials in flight cover 20/s; more only crowd two cores.
    stack = Stack(workers=WORKERS, concurrency=4, **settings)
    try:
        stack.start(worker_app=None if shared_bucket else "benchmarks.celery_rate_limit")
        key = stack.account()
        api = httpx.Client(base_url=stack.api_url, params={"apiKey": key}, timeout=120)
        api.post("/api/campaigns", json={"name": "bench", "script": "Hello {name}"})
        wanted = numbers(COUNT)
        rows = [{"clientName": "n", "clientNumber": n} for n in wanted]
        batch_id = api.post(
            "/api/make_batch_toingg", json={"campaign": "bench", "numberList": rows}
        ).json()["batchId"]
        pause_latency = float("nan")
        deadline = time.monotonic() + COUNT / LIMIT + 90
        paused = False
        # Progress from the API's batch counts: the carrier's whole call list, fetched every
        # second, would stall the carrier's loop and bunch the arrivals it stamps.
        while time.monotonic() < deadline:
            placed = COUNT - owed(api, batch_id)
            if shared_bucket and not paused and placed >= COUNT // 2:
                paused_at = time.time()
                api.post(f"/api/batches/{batch_id}/pause")
                time.sleep(3)
                created = [c["created_at"] for c in stack.carrier_calls()]
                pause_latency = max(0.0, max(created) - paused_at)
                api.post(f"/api/batches/{batch_id}/resume")
                paused = True
                pause_gap = (paused_at, time.time())
            if placed >= COUNT:
                break
            time.sleep(1)
        calls = [c for c in stack.carrier_calls() if c["to"] in set(wanted)]
        arrived = sorted(c["created_at"] for c in calls)
        dialed = dialed_at(api, batch_id, COUNT)
        if shared_bucket:
            # The pause is not pacing: measure the two stretches around it.
            cut = (pause_gap[0] + pause_latency, pause_gap[1])
            stretches = [*_around(arrived, cut), *_around(dialed, cut)]
        else:
            stretches = [arrived, dialed]
        per_second = [Counter(int(t - s[0]) for t in s) for s in stretches[: len(stretches) // 2]]
        print(
            "calls per second at the carrier:",
            [sorted(counts.values(), reverse=True)[:5] for counts in per_second],
        )
        at_carrier = stretches[: len(stretches) // 2]
        dialled = sum(len(s) - 1 for s in at_carrier)
        elapsed = sum(s[-1] - s[0] for s in at_carrier)
        return {
            "calls": len(calls),
            "repeats": len(calls) - len({c["to"] for c in calls}),
            "busiest_second_at_carrier": max(_busiest_window(s) for s in at_carrier),
            "busiest_second_sent": max(
                _busiest_window(s) for s in stretches[len(stretches) // 2 :]
            ),
            "average_per_second": dialled / elapsed,
            "pause_latency_s": pause_latency,
        }
    finally:
        stack.stop()


def main() -> None:
    bucket = _run(shared_bucket=True)
    celery = _run(shared_bucket=False)
    priority = " ".join(Stack.carrier_priority()) or "none (not root)"
    print(
        f"limit {LIMIT}/s, burst {BURST}, {WORKERS} worker processes, {COUNT} numbers; "
        f"carrier priority: {priority}"
    )
    for name, figures in (("shared bucket", bucket), ("celery rate_limit", celery)):
        print(f"{name:>18}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    print(
        f"pause latency (POST /pause to the last new call at the carrier): "
        f"{bucket['pause_latency_s']:.2f} s"
    )
    print(
        f"ratio: shared bucket average/limit {bucket['average_per_second'] / LIMIT:.3f}, "
        f"busiest second/(limit+burst) as sent "
        f"{bucket['busiest_second_sent'] / (LIMIT + BURST):.2f}, at the carrier "
        f"{bucket['busiest_second_at_carrier'] / (LIMIT + BURST):.2f}; "
        f"celery rate_limit average/limit {celery['average_per_second'] / LIMIT:.2f}"
    )


if __name__ == "__main__":
    main()
