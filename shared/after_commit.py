"""Effects outside the database that must follow a commit: a task sent, a flag set in Redis.

`on_commit(session, action)` runs `action` once the session's transaction has committed and
drops it when the transaction rolls back, so nothing outside shows what the database did not
keep. SQLAlchemy reports a savepoint's release and rollback with the same events as the
transaction's end; those are not the end and are ignored.
"""

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

_PENDING = "after_commit"
_KEYS = "after_commit_keys"

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
def _run(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_KEYS, None)
    for action in session.info.pop(_PENDING, []):
        try:
            action()
        except Exception:
            log.exception("after commit: %r failed", action)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)
        session.info.pop(_KEYS, None)
