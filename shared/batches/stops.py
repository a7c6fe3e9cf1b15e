"""Batches paused or canceled, as a flag in Redis that a worker reads in microseconds right
before it dials. The database is the source of truth (a claim, and a worker taking a claim,
check the batch's status); the flag catches the calls already taken: a worker checks it through
its wait for a slot in the dial rate up to right before it dials.

The flag follows the database: it is set and cleared only once the pause, resume or cancel has
committed, so a control request whose commit fails leaves the flag as it was; a flag the batch's
row does not bear out (a committed resume whose clearing failed) is cleared by the first worker
that stands down for it (`calls.service.stand_down`)."""

import time
from functools import partial

from sqlalchemy.orm import Session

from shared.after_commit import on_commit
from shared.redis_client import get_redis

_TTL_SECONDS = 7 * 24 * 3600
_LOOK_EVERY_SECONDS = 0.25


def _key(batch_id: str) -> str:
    return f"toingg:batch:stopped:{batch_id}"


def mark_stopped(batch_id: str) -> None:
    get_redis().set(_key(batch_id), "1", ex=_TTL_SECONDS)


def clear(batch_id: str) -> None:
    get_redis().delete(_key(batch_id))


def mark_stopped_on_commit(session: Session, batch_id: str) -> None:
    on_commit(session, partial(mark_stopped, batch_id))


def clear_on_commit(session: Session, batch_id: str) -> None:
    on_commit(session, partial(clear, batch_id))


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
