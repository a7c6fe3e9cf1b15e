"""Batches paused or canceled, as a flag in Redis that a worker reads in microseconds right
before it dials. The database is the source of truth (a claim, and a worker taking a claim,
check the batch's status); the flag catches the calls already taken: a worker checks it through
its wait for a slot in the dial rate up to right before it dials.

The flag follows the database: once a pause, resume or cancel has committed, the batch's status
is read again and the flag set or cleared to match, so a control request whose commit fails
leaves the flag as it was. The read holds the batch's row until the flag is written, so a
change committing later writes its flag later: changed from what each request set itself, a
resume held up after its commit cleared the flag of a pause that committed after it. A flag the
batch's row does not bear out (writing it failed) is cleared by the first worker that stands
down for it (`calls.service.stand_down`)."""

import time
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.after_commit import on_commit
from shared.calls.repository import STOPPED_BATCHES
from shared.db import session_scope
from shared.models import Batch
from shared.redis_client import get_redis

_TTL_SECONDS = 7 * 24 * 3600
_LOOK_EVERY_SECONDS = 0.25


def _key(batch_id: str) -> str:
    return f"toingg:batch:stopped:{batch_id}"


def mark_stopped(batch_id: str) -> None:
    get_redis().set(_key(batch_id), "1", ex=_TTL_SECONDS)


def clear(batch_id: str) -> None:
    get_redis().delete(_key(batch_id))


def follow(batch_id: str) -> None:
    """Set or clear the flag as the batch's committed status says, holding its row meanwhile."""
    with session_scope() as session:
        status = session.scalar(
            select(Batch.status).where(Batch.id == batch_id).with_for_update(read=True)
        )
        if status in STOPPED_BATCHES:
            mark_stopped(batch_id)
        else:
            clear(batch_id)


def follow_on_commit(session: Session, batch_id: str) -> None:
    on_commit(session, partial(follow, batch_id))


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
