"""Task names for webhooks, and enqueueing them after the caller's commit."""

from sqlalchemy.orm import Session

from shared.queue import enqueue

TICK = "webhooks.tick"
DELIVER = "webhooks.deliver"


def deliver(session: Session, attempt_id: str) -> None:
    enqueue(session, DELIVER, attempt_id)
