"""Batches paused or canceled, as a flag in Redis that a worker reads in microseconds right
before it dials. The database is the source of truth (a claim checks the batch's status); the
flag catches the calls already claimed: a worker checks it when it takes a claim, and through
its wait for a slot in the dial rate up to right before it dials."""

import time

from shared.redis_client import get_redis

_TTL_SECONDS = 7 * 24 * 3600
_LOOK_EVERY_SECONDS = 0.25


def _key(batch_id: str) -> str:
    return f"toingg:batch:stopped:{batch_id}"


def mark_stopped(batch_id: str) -> None:
    get_redis().set(_key(batch_id), "1", ex=_TTL_SECONDS)


def clear(batch_id: str) -> None:
    get_redis().delete(_key(batch_id))


def is_stopped(batch_id: str | None) -> bool:
    return batch_id is not None and bool(get_redis().exists(_key(batch_id)))


def wait_unless_stopped(batch_id: str | None, seconds: float) -> bool:
    """Sleep `seconds`, looking at the flag along the way and once more at the end. False as
    soon as the batch is paused or canceled: a call waiting seconds for its slot goes back at
    once, and the batch's counts show the stop at once rather than when the wait is over."""
    deadline = time.monotonic() + seconds
    while not is_stopped(batch_id):
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, _LOOK_EVERY_SECONDS))
    return False
