"""Each API key's leaky bucket, as the seeds promise: a request rate and a burst (defaults from
settings, overridable per account). Before a key is looked up in the database, a key not seen
valid in the last day takes a token from its client address's bucket, so random keys cannot
drive lookups faster than that bucket allows, while a customer sharing a proxy's address with
them, whose key was valid recently, is looked up and served as usual."""

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


# How long a key found valid is looked up without taking a token from its address's bucket.
_KNOWN_KEY_SECONDS = 86_400


def _known_key(key_hash: str) -> str:
    return f"toingg:known-key:{key_hash}"


def known_key(key_hash: str) -> bool:
    return bool(get_redis().exists(_known_key(key_hash)))


def remember_key(key_hash: str) -> None:
    get_redis().set(_known_key(key_hash), 1, ex=_KNOWN_KEY_SECONDS)


def forget_key(key_hash: str) -> None:
    """A key found unknown or revoked: from now on it takes tokens like any unknown key."""
    get_redis().delete(_known_key(key_hash))


def _unknown_keys(client: str) -> Bucket:
    settings = get_settings()
    return Bucket(
        get_redis(),
        f"toingg:rate:bad-key:{client}",
        settings.API_BAD_KEY_RATE_PER_SECOND,
        settings.API_BAD_KEY_BURST,
    )


def take_unknown_key(client: str) -> Decision:
    """One more lookup of a key not seen valid lately from this client address: not allowed
    once it sent too many, so guessing keys gets no answer but 429 at more than the bucket's
    rate, and costs no database read."""
    return _unknown_keys(client).take()
