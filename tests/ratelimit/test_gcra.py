"""The leaky bucket in Redis, shared by several processes as workers on several hosts share it."""

import multiprocessing
import os
import time
from collections import Counter

import redis

from shared.ratelimit.gcra import Bucket


def _bucket(key: str, rate: float, burst: int) -> Bucket:
    return Bucket(redis.Redis.from_url(os.environ["REDIS_URL"]), key, rate, burst)


def _worker(
    key: str, rate: float, burst: int, slots: int, out: "multiprocessing.Queue[float]"
) -> None:
    bucket = _bucket(key, rate, burst)
    for _ in range(slots):
        decision = bucket.reserve(max_wait_seconds=60)
        time.sleep(decision.wait_seconds)
        out.put(time.time())


class TestTake:
    def test_allows_the_burst_then_refuses_with_the_wait(self) -> None:
        bucket = _bucket(f"test:take:{time.monotonic_ns()}", rate=10, burst=3)
        decisions = [bucket.take() for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
        assert 0.05 < decisions[3].wait_seconds <= 0.1

    def test_refills_at_the_rate(self) -> None:
        bucket = _bucket(f"test:refill:{time.monotonic_ns()}", rate=20, burst=1)
        assert bucket.take().allowed
        assert not bucket.take().allowed
        time.sleep(0.06)
        assert bucket.take().allowed


class TestReserveAcrossProcesses:
    def test_four_processes_never_exceed_rate_plus_burst_in_any_second(self) -> None:
        rate, burst, per_process = 20, 2, 20
        key = f"test:reserve:{time.monotonic_ns()}"
        context = multiprocessing.get_context("spawn")
        out: multiprocessing.Queue[float] = context.Queue()
        processes = [
            context.Process(target=_worker, args=(key, rate, burst, per_process, out))
            for _ in range(4)
        ]
        for process in processes:
            process.start()
        times = sorted(out.get(timeout=30) for _ in range(4 * per_process))
        for process in processes:
            process.join(timeout=10)
        # Every sliding one-second window, starting at each slot.
        busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
        assert busiest <= rate + burst
        span = times[-1] - times[0]
        assert (len(times) - burst) / span >= 0.97 * rate
        assert max(Counter(int(t - times[0]) for t in times).values()) <= rate + burst

    def test_reserve_refuses_a_slot_beyond_the_longest_wait(self) -> None:
        bucket = _bucket(f"test:far:{time.monotonic_ns()}", rate=1, burst=1)
        assert bucket.reserve(max_wait_seconds=0.5).allowed
        refused = bucket.reserve(max_wait_seconds=0.5)
        assert not refused.allowed
        assert 0.5 < refused.wait_seconds <= 1.0
