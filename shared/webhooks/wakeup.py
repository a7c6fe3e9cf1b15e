"""Telling the senders that deliveries were just written, so they claim them now rather than at
the next poll.

The transaction that owes an event to endpoints publishes a word on a Redis channel once it has
committed (once, however many deliveries it wrote); each worker that sends webhooks listens on
it. The word carries nothing: the deliveries are read from the database, as the poll reads
them. Redis publishes to whoever listens at that moment and keeps nothing, so a word lost (no
worker listening, Redis away) costs only the wait for the poll, which stays the safety net.
"""

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from shared.after_commit import on_commit
from shared.redis_client import get_redis

CHANNEL = "webhooks:due"
# How long a listener waits before it tries again to subscribe after losing Redis.
RESUBSCRIBE_SECONDS = 1.0

log = logging.getLogger(__name__)


def after_commit(session: Session) -> None:
    on_commit(session, publish, key=CHANNEL)


def publish() -> None:
    try:
        get_redis().publish(CHANNEL, "")
    except Exception:
        # Committed and owed all the same: the next poll claims them.
        log.warning("could not publish on %s; the poll will claim the deliveries", CHANNEL)


def listen(woken: Callable[[], None], stop: threading.Event) -> None:
    """Call `woken` for each word published, until `stop` is set; subscribe again whenever
    Redis goes away (what is published meanwhile is left to the poll)."""
    while not stop.is_set():
        try:
            pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                while not stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        woken()
            finally:
                pubsub.close()
        except Exception:
            log.warning("lost %s; subscribing again", CHANNEL, exc_info=True)
            # Deliveries owed meanwhile had no word: claim them as if woken.
            woken()
            stop.wait(RESUBSCRIBE_SECONDS)


def wait_for_subscriber(timeout: float = 5.0) -> bool:
    """Whether a listener subscribed within `timeout` (for a process that must not publish
    before one does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_redis().pubsub_numsub(CHANNEL)[0][1] > 0:
            return True
        time.sleep(0.05)
    return False
