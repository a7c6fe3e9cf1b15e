"""The workers' Celery app with Celery's own per-task rate limit on calls.dial instead of the
shared bucket: for comparison only (Celery's limit holds per worker process, not globally)."""

from workers.celery_app import app

RATE = "20/s"
app.conf.task_annotations = {"calls.dial": {"rate_limit": RATE}}
