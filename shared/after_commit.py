"""Effects outside the database that must follow a commit: a task sent, a flag set in Redis.

`on_commit(session, action)` runs `action` once the session's transaction has committed and
drops it when the transaction rolls back, so nothing outside shows what the database did not
keep. SQLAlchemy reports a savepoint's release and rollback with the same events as the
transaction's end; those are not the end and are ignored.
"""

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "after_commit"
_KEYS = "after_commit_keys"
_READY = "after_commit_ready"

log = logging.getLogger(__name__)


def on_commit(session: Session, action: Callable[[], object], *, key: object = None) -> None:
    """`key`: an action of the same key already pending for this transaction is not added
    again (a batch followed once however many of its calls changed)."""
    if key is not None:
        keys = session.info.setdefault(_KEYS, set())
        if key in keys:
            return
        keys.add(key)
    session.info.setdefault(_PENDING, []).append(action)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_KEYS, None)
    session.info.setdefault(_READY, []).extend(session.info.pop(_PENDING, []))


@event.listens_for(Session, "after_transaction_end")
def _run(session: Session, transaction: SessionTransaction) -> None:
    # Run once the transaction's connection is back in the pool: "after_commit" fires while it
    # is still checked out, so an action opening a session of its own held two connections,
    # and enough requests doing so at once waited on the pool for each other.
    if transaction.parent is not None:
        return
    for action in session.info.pop(_READY, []):
        try:
            action()
        except Exception:
            log.exception("after commit: %r failed", action)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)
        session.info.pop(_KEYS, None)
