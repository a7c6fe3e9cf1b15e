"""Effects outside the database that must follow a commit: a task sent, a flag set in Redis.

`on_commit(session, action)` runs `action` once the session's transaction has committed and
drops it when the transaction rolls back or ends uncommitted, so nothing outside shows what the
database did not keep. An action added inside a savepoint belongs to it: dropped when that
savepoint (or one around it) rolls back, kept when it is released, and run only at the commit.
SQLAlchemy reports a savepoint's release and rollback with the same events as the
transaction's end; those are not the end and are ignored.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "after_commit"
_KEYS = "after_commit_keys"
_READY = "after_commit_ready"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    # The innermost savepoint open when the action was added (None: none was).
    savepoint: SessionTransaction | None
    key: object
    action: Callable[[], object]


def on_commit(session: Session, action: Callable[[], object], *, key: object = None) -> None:
    """`key`: an action of the same key already pending for this transaction is not added
    again (a batch followed once however many of its calls changed)."""
    if key is not None:
        keys = session.info.setdefault(_KEYS, set())
        if key in keys:
            return
        keys.add(key)
    pending = _Pending(session.get_nested_transaction(), key, action)
    session.info.setdefault(_PENDING, []).append(pending)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_KEYS, None)
    ready = session.info.setdefault(_READY, [])
    ready.extend(pending.action for pending in session.info.pop(_PENDING, []))


@event.listens_for(Session, "after_transaction_end")
def _run(session: Session, transaction: SessionTransaction) -> None:
    # Run once the transaction's connection is back in the pool: "after_commit" fires while it
    # is still checked out, so an action opening a session of its own held two connections,
    # and enough requests doing so at once waited on the pool for each other.
    if transaction.parent is not None:
        return
    # Still pending when the transaction is over: it rolled back, or was closed uncommitted.
    session.info.pop(_PENDING, None)
    session.info.pop(_KEYS, None)
    for action in session.info.pop(_READY, []):
        try:
            action()
        except Exception:
            log.exception("after commit: %r failed", action)


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        return  # the transaction's own end drops what it left (`_run`)
    kept, dropped = [], []
    for pending in session.info.get(_PENDING, []):
        within = _within(pending.savepoint, previous_transaction)
        (dropped if within else kept).append(pending)
    if not dropped:
        return
    session.info[_PENDING] = kept
    keys = session.info.get(_KEYS, set())
    for pending in dropped:
        keys.discard(pending.key)


def _within(savepoint: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is outer:
            return True
        savepoint = savepoint.parent
    return False
