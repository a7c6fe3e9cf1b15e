"""The Celery app the workers and beat run: queues, routes and schedule come from
shared.queue (the API sends with the same app); this module adds the tasks and the beat
schedule."""

from shared.billing import jobs as billing_jobs
from shared.calls import jobs as call_jobs
from shared.config import settings_or_exit
from shared.idempotency import jobs as idempotency_jobs
from shared.queue import get_celery
from shared.retention import jobs as retention_jobs
from shared.sms import jobs as sms_jobs
from shared.webhooks import jobs as webhook_jobs

# `celery -A workers.celery_app worker` (or beat) started without `toingg`: its settings are
# checked here as they are by `toingg`, before anything runs on them.
settings_or_exit("workers.celery_app")
app = get_celery()
app.conf.include = [
    "workers.tasks.calls",
    "workers.tasks.sms",
    "workers.tasks.billing",
    "workers.tasks.idempotency",
    "workers.tasks.retention",
    "workers.tasks.webhooks",
]
app.conf.beat_schedule = {
    "hand out owed calls": {"task": call_jobs.DISPATCH, "schedule": 1.0},
    "give back what ended calls did not use": {"task": call_jobs.SETTLE, "schedule": 1.0},
    "reconcile stuck dials": {"task": call_jobs.SWEEP, "schedule": 10.0},
    # Ticks older than half a minute are dropped unrun, so after an outage no backlog of them
    # stands in front of the hang-ups in their queue (a newer tick does the same work).
    "hang up what was asked for and not carried out": {
        "task": call_jobs.SWEEP_HANG_UPS,
        "schedule": 5.0,
        "options": {"expires": 30.0},
    },
    # Ticks older than a few seconds are dropped unrun: a newer one claims the same work.
    "deliver due webhooks": {
        "task": webhook_jobs.TICK,
        "schedule": 1.0,
        "options": {"expires": 5.0},
    },
    "hand out owed sms": {"task": sms_jobs.DISPATCH, "schedule": 1.0},
    "reconcile stuck sms": {"task": sms_jobs.SWEEP, "schedule": 5.0},
    "retry stripe events waiting for their payment": {
        "task": billing_jobs.RETRY_PENDING,
        "schedule": 60.0,
    },
    # Keys are kept at least 24 hours (KEEP); an hourly purge keeps them at most 25.
    "forget idempotency keys older than a day": {
        "task": idempotency_jobs.PURGE,
        "schedule": 3600.0,
    },
    # Payloads are kept RETENTION_DAYS; an hourly purge keeps them at most an hour longer.
    "empty payloads older than RETENTION_DAYS": {
        "task": retention_jobs.PURGE,
        "schedule": 3600.0,
    },
}
