"""Task names for SMS, and enqueueing them after the caller's commit."""

from sqlalchemy.orm import Session

from shared.queue import enqueue

SEND = "sms.send"
RECONCILE = "sms.reconcile"
DISPATCH = "sms.dispatch"
SWEEP = "sms.sweep"


def send(session: Session, sms_id: str, claimed: str | None = None) -> None:
    """Send a message: one the dispatcher claimed (the claim's attempt), or one to claim first."""
    if claimed is None:
        enqueue(session, SEND, sms_id)
    else:
        enqueue(session, SEND, sms_id, claimed)


def reconcile(session: Session, sms_id: str) -> None:
    enqueue(session, RECONCILE, sms_id)


def dispatch(session: Session) -> None:
    enqueue(session, DISPATCH)
