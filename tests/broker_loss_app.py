"""The worker app of tests/test_worker_broker_loss.py: the product's Celery app, with its
settings (shared.queue), and two tasks of the test's own."""

import time

from shared.queue import get_celery
from shared.redis_client import get_redis

app = get_celery()


@app.task(name="tests.hold")
def hold(seconds: float) -> None:
    """Counted when it starts, then holds its message unacknowledged (acks_late) a while."""
    get_redis().incr("tests:holding")
    time.sleep(seconds)


@app.task(name="tests.mark")
def mark() -> None:
    get_redis().set("tests:marked", "1")
