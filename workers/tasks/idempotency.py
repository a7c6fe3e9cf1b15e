"""Idempotency keys: forget those older than a day."""

from shared.db import session_scope
from shared.idempotency import jobs
from shared.idempotency import service as idempotency_service
from shared.queue import get_celery

app = get_celery()


@app.task(name=jobs.PURGE, acks_late=False)
def purge() -> int:
    with session_scope() as session:
        return idempotency_service.purge(session)
