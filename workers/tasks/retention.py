"""Retention: empty the payloads older than RETENTION_DAYS."""

from dataclasses import asdict

from shared.queue import get_celery
from shared.retention import jobs
from shared.retention import service as retention_service

app = get_celery()


@app.task(name=jobs.PURGE, acks_late=False)
def purge() -> dict[str, int]:
    return asdict(retention_service.purge(retention_service.cutoff()))
