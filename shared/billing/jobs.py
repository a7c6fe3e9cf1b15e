"""Task names for billing, and enqueueing them after the caller's commit."""

from sqlalchemy.orm import Session

from shared.queue import enqueue

APPLY_EVENT = "billing.apply_event"
RETRY_PENDING = "billing.retry_pending"


def apply_event(session: Session, event_id: str) -> None:
    enqueue(session, APPLY_EVENT, event_id)


def retry_event(session: Session, event_id: str) -> None:
    """The retry scan's wake-up: applied only if the event is still due when it runs, so scans
    that pile up before a worker runs them count one attempt, not one each."""
    enqueue(session, APPLY_EVENT, event_id, True)
