"""Each API key's leaky bucket, as the seeds promise: a request rate and a burst (defaults from
settings, overridable per account). One Redis round trip per request; an unknown or revoked
key takes one instead from its client address's bucket."""

import math

from shared.config import get_settings
from shared.models import Account, ApiKey
from shared.ratelimit.gcra import Bucket, Decision
from shared.redis_client import get_redis


def limits(account: Account) -> tuple[float, int]:
    settings = get_settings()
    rate = account.api_rate_per_second or settings.API_RATE_PER_SECOND
    burst = account.api_burst if account.api_burst is not None else settings.API_BURST
    return rate, burst


def take(api_key: ApiKey, account: Account) -> Decision:
    rate, burst = limits(account)
    return Bucket(get_redis(), f"toingg:rate:api:{api_key.id}", rate, burst).take()


def headers(account: Account, decision: Decision) -> dict[str, str]:
    """RateLimit-* fields (IETF httpapi draft): the bucket's size, what is left, and when the
    next request is allowed (seconds)."""
    rate, burst = limits(account)
    return {
        "RateLimit-Limit": str(max(burst, 1)),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.wait_seconds)),
        "RateLimit-Policy": f"{max(burst, 1)};w={math.ceil(max(burst, 1) / rate)}",
    }


def _bad_keys(client: str) -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:bad-key:{client}",
        settings.API_BAD_KEY_RATE_PER_SECOND,
        settings.API_BAD_KEY_BURST,
    )


def take_bad_key(client: str) -> Decision:
    """One more unknown or revoked key from this client address: not allowed once it sent
    too many, so guessing keys gets no answer but 429 at more than the bucket's rate."""
    return _bad_keys(client).take()
