"""Keeping a refusal at acceptance though its request is refused: the 422 rolls back the
request's transaction, so the refusal's event commits in a transaction of its own."""

from sqlalchemy.orm import Session

from shared.batches.service import NothingToCall
from shared.db import session_scope
from shared.dnc import refusals
from shared.dnc.service import OnTheList


def refused(session: Session, account_id: str, event_type: str, exc: OnTheList) -> None:
    """A single call's or SMS's refusal (call.refused, sms.refused)."""
    # The request's work is let go first: nothing it holds waits on the refusal's commit.
    session.rollback()
    with session_scope() as own:
        refusals.refused(own, account_id, event_type, exc.number, str(exc), exc.rule)


def batch_refused(session: Session, account_id: str, exc: NothingToCall) -> None:
    """A batch refused whole: its listed rows' event, under the id it would have had."""
    if not exc.refused:
        return
    session.rollback()
    with session_scope() as own:
        refusals.batch_refused(own, account_id, exc.batch_id, exc.refused)
