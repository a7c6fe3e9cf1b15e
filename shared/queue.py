"""Sending tasks by name, only after the transaction that created their rows has committed.

Services call `enqueue(session, name, *args)`; the jobs wait on the session and are sent when it
commits, dropped when it rolls back. The API never imports worker code: a task name is all it
needs.
"""

import logging
from functools import lru_cache, partial
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from shared.after_commit import on_commit
from shared.config import get_settings

QUEUES = ("hangups", "calls", "sms", "callbacks", "billing", "webhooks", "default")
# Webhook delivery's tick starts the claimer, sender and recorder threads of the worker process
# that takes it. Deployed, a worker of its own consumes this queue alone: in a dial worker those
# threads took the dial tasks' interpreter lock (the throughput benchmark in the README shows
# what that cost). One worker consuming every queue, `toingg worker`'s default, delivers too.
WEBHOOK_QUEUE = "webhooks"
# Everything else: what the dial workers consume beside a webhook worker.
WORK_QUEUES = tuple(q for q in QUEUES if q != WEBHOOK_QUEUE)

log = logging.getLogger(__name__)


@lru_cache
def get_celery() -> Celery:
    """The Celery app both sides share: the API sends with it, the workers run it."""
    settings = get_settings()
    # Its own event dispatcher: Celery 5.6's drops task events the pool's threads send during a
    # flush (shared/task_events.py).
    app = Celery("toingg", broker=settings.redis_url, events="shared.task_events:Events")
    app.conf.update(
        task_default_queue="default",
        task_create_missing_queues=False,
        task_queues={name: {"routing_key": name} for name in QUEUES},
        task_routes={
            # A hang-up must not wait behind a backlog of dials, nor behind the dispatcher's
            # ticks that pile up while no worker runs: a queue of its own.
            "calls.hang_up": {"queue": "hangups"},
            "calls.sweep_hang_ups": {"queue": "hangups"},
            "calls.dispatch": {"queue": "default"},
            "calls.sweep": {"queue": "default"},
            "calls.settle": {"queue": "default"},
            "sms.dispatch": {"queue": "default"},
            "sms.sweep": {"queue": "default"},
            "billing.retry_pending": {"queue": "default"},
            "calls.*": {"queue": "calls"},
            "sms.*": {"queue": "sms"},
            "callbacks.*": {"queue": "callbacks"},
            "billing.*": {"queue": "billing"},
            # Its own queue: the delivery tick waits behind no backlog of the others' ticks.
            "webhooks.*": {"queue": WEBHOOK_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A worker whose broker is away keeps trying to reconnect for as long as it takes (the
        # default gives up after 100 attempts, about 50 minutes, and exits).
        broker_connection_max_retries=None,
        # What runs when the broker goes away finishes: a dial in flight records its SID in the
        # database, where reconcile would otherwise have to find it. (Celery 6 turns this on.)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Far-future work is scheduled from the database, never with long ETAs on Redis, so
        # the default hour is only the redelivery delay for a message whose worker died. Socket
        # timeouts: a send to a broker that vanished without closing the connection fails
        # instead of waiting for ever (the consumer's BRPOP is answered within a second).
        broker_transport_options={
            "visibility_timeout": 3600,
            "socket_timeout": settings.REDIS_SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        },
        worker_send_task_events=True,
        task_send_sent_event=True,
        enable_utc=True,
    )
    return app


def enqueue(session: Session, name: str, *args: Any) -> None:
    on_commit(session, partial(_send_committed, name, args))


def send_now(name: str, *args: Any) -> None:
    get_celery().send_task(name, args=list(args))


def _send_committed(name: str, args: tuple[Any, ...]) -> None:
    # The rows are committed: a wake-up that cannot be sent now is not lost work, because the
    # sweeper hands out whatever the database says is still owed.
    try:
        send_now(name, *args)
    except Exception:
        log.exception("could not send %s%r now; the sweeper will pick it up", name, args)
