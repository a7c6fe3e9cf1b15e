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

    .venv/bin/python -m benchmarks.throughput   # PostgreSQL and Redis on this machine by default
"""

import time

import httpx

from benchmarks.harness import Stack, numbers, owed

TARGET, LATENCY_S, COUNT = 100, 0.3, 4000
WORKERS, THREADS = 2, 32


def _run(play_calls: bool, count: int, accounts: int) -> dict[str, float]:
    stack = Stack(
        workers=WORKERS,
        concurrency=THREADS,
        SANDBOX_LATENCY_MS=str(int(LATENCY_S * 1000)),
        SANDBOX_PLAY_CALLS=str(play_calls).lower(),
        DIAL_RATE_PER_SECOND="1000",
        DIAL_BURST="100",
        DISPATCH_WINDOW="400",
    )
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
        return {
            "calls": len(calls),
            "repeats": len(calls) - len({c["to"] for c in calls}),
            "per_second": (len(steady) - 1) / (steady[-1] - steady[0]),
        }
    finally:
        stack.stop()


def main() -> None:
    bound = WORKERS * THREADS / LATENCY_S
    runs = {
        "dial path, 1 account": _run(play_calls=False, count=COUNT, accounts=1),
        "dial path, 4 accounts": _run(play_calls=False, count=COUNT, accounts=4),
        "whole call life, 1 account": _run(play_calls=True, count=COUNT // 2, accounts=1),
    }
    print(
        f"carrier latency {LATENCY_S * 1000:.0f} ms, limit 1000/s, {WORKERS} worker processes "
        f"x {THREADS} threads (bound by latency: {bound:.0f}/s)"
    )
    for name, figures in runs.items():
        print(f"{name:>27}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
    print(
        "ratio to the target of 100/s: "
        + ", ".join(
            f"{name} {figures['per_second'] / TARGET:.2f}" for name, figures in runs.items()
        )
    )


if __name__ == "__main__":
    main()
