"""Billing tasks: apply stored Stripe events, and retry those not applied yet once they are due."""

from shared.billing import events, jobs
from shared.db import session_scope
from shared.queue import get_celery

app = get_celery()


@app.task(name=jobs.APPLY_EVENT)
def apply_event(event_row_id: str, only_if_due: bool = False) -> str:
    with session_scope() as session:
        return events.apply(session, event_row_id, only_if_due=only_if_due)


@app.task(name=jobs.RETRY_PENDING, acks_late=False)
def retry_pending() -> int:
    with session_scope() as session:
        event_ids = events.due_ids(session)
        for event_id in event_ids:
            jobs.retry_event(session, event_id)
    return len(event_ids)
