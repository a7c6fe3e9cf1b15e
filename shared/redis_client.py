from functools import lru_cache

import redis

from shared.config import get_settings


@lru_cache
def get_redis() -> redis.Redis:
    return connect(get_settings().redis_url)


def connect(url: str) -> redis.Redis:
    """A client whose every command and connect gives up after REDIS_SOCKET_TIMEOUT_SECONDS: a
    connection that went dead without closing must not hold a worker (before a dial: past its
    claim's ambiguity window) for ever."""
    timeout = get_settings().REDIS_SOCKET_TIMEOUT_SECONDS
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
    )
