"""Task names for SMS, and enqueueing them after the caller's commit."""

from sqlalchemy.orm import Session

from shared.queue import enqueue

SEND = "sms.send"
RECONCILE = "sms.reconcile"
SWEEP = "sms.sweep"


def send(session: Session, sms_id: str) -> None:
    enqueue(session, SEND, sms_id)


def reconcile(session: Session, sms_id: str) -> None:
    enqueue(session, RECONCILE, sms_id)
