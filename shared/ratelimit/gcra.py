"""Leaky buckets in Redis (GCRA: the generic cell rate algorithm), shared by every process.

A bucket is one key holding its "theoretical arrival time" (TAT). With emission interval
T = 1/rate and burst b (the bucket's size: b requests may go at once), a request at time t
conforms when t >= TAT - (b-1)*T, and then moves TAT to max(TAT, t) + T: at most rate requests a
second on average, and at most rate + b - 1 in any one-second window. The clock is Redis's own
(TIME), so hosts with skewed clocks share one bucket.

Two ways to use a bucket, one Redis round trip each:
- `take`: answer now, allowed or not, with the wait until it would be (API requests);
- `reserve`: book the next free slot and return how long to wait for it (dialing), so waiting
  workers form an orderly queue instead of spinning.
"""

from dataclasses import dataclass

from redis import Redis

# KEYS[1] bucket; ARGV: interval (µs), burst, mode ("take" or "reserve"), max wait (µs).
# Returns {allowed 0/1, wait µs, remaining slots}.
_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = interval * math.max(tonumber(ARGV[2]) - 1, 0)
local mode = ARGV[3]
local max_wait = tonumber(ARGV[4])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowed_at = tat - tolerance
if allowed_at < now then allowed_at = now end
local wait = allowed_at - now
if (mode == 'take' and wait > 0) or (mode == 'reserve' and wait > max_wait) then
  return {0, wait, 0}
end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', ttl_ms)
local remaining = math.floor((now + tolerance - (new_tat - interval)) / interval)
if remaining < 0 then remaining = 0 end
return {1, wait, remaining}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_seconds: float
    remaining: int


class Bucket:
    def __init__(self, redis: Redis, key: str, rate_per_second: float, burst: int) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.redis = redis
        self.key = key
        self.interval_us = int(1_000_000 / rate_per_second)
        self.burst = max(burst, 1)
        self._script = redis.register_script(_SCRIPT)

    def _call(self, mode: str, max_wait_seconds: float) -> Decision:
        allowed, wait_us, remaining = self._script(
            keys=[self.key],
            args=[self.interval_us, self.burst, mode, int(max_wait_seconds * 1_000_000)],
        )
        return Decision(bool(allowed), int(wait_us) / 1_000_000, int(remaining))

    def take(self) -> Decision:
        return self._call("take", 0)

    def reserve(self, max_wait_seconds: float) -> Decision:
        """Book a slot at most max_wait_seconds away; not allowed means nothing was booked."""
        return self._call("reserve", max_wait_seconds)
