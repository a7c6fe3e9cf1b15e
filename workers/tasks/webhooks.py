"""Webhook delivery in the worker: a tick each second claims what is due, and a pool of sender
threads in the worker process sends it.

The tick claims only as many deliveries as the pool has idle threads, so every claimed request
is sent at once and its lease (the request's deadline and a margin) never runs out while it
waits; a slow receiver holds a sender thread, never one of the worker's task threads. Each
sender, once its delivery is delivered or given up, goes on with the same subject's next event
to the same endpoint when it is due.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from shared.db import session_scope
from shared.queue import get_celery
from shared.webhooks import delivery, jobs

log = logging.getLogger(__name__)
app = get_celery()

# Requests in flight at once per worker process: at 100 deliveries a second of 50 ms each, five
# are busy (Little's law); the rest is room for receivers that take their time to answer.
SENDERS = 32
# A tick claims batch after batch while full ones come back and senders are idle, for at most
# this long: the next tick is a second away.
TICK_SECONDS = 2.0
# How often a tick with a backlog looks for a sender come free.
FREE_POLL_SECONDS = 0.01


class _Senders:
    """The pool, and how many of its threads are taken: a tick reserves threads before it
    claims, so what it claims is sent at once whatever other ticks claim meanwhile."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="webhook-sender")

    def reserve(self, most: int) -> int:
        with self.lock:
            taken = min(most, self.size - self.busy)
            self.busy += taken
            return taken

    def release(self, count: int) -> None:
        with self.lock:
            self.busy -= count

    def start(self, request: delivery.Request) -> None:
        """On a reserved thread."""
        self.pool.submit(self._run, request)

    def _run(self, request: delivery.Request) -> None:
        try:
            deliver_in_turn(request)
        except Exception:
            # Its lease runs out and the delivery is claimed again: sent at least once.
            log.exception("webhook attempt %s failed to run", request.attempt_id)
        finally:
            self.release(1)


_senders = _Senders(SENDERS)


def deliver_in_turn(request: delivery.Request | None) -> list[str]:
    """Send the request, record its outcome, and go on with its subject's next event while
    each is through and the next is due: what each record said."""
    said = []
    while request is not None:
        outcome = delivery.send(request)
        with session_scope() as session:
            said.append(delivery.record(session, request, outcome))
            request = delivery.claim_next(session, request)
    return said


@app.task(name=jobs.TICK, acks_late=False)
def tick() -> int:
    """Claim what is due, as much as the idle senders can take, and hand it to them; while more
    is due than they can take, go on as they come free, for TICK_SECONDS. A tick or a sender
    lost with its worker loses nothing: what it claimed is due again once the claims run out."""
    claimed = 0
    ends = time.monotonic() + TICK_SECONDS
    while time.monotonic() < ends:
        room = _senders.reserve(delivery.CLAIM_BATCH)
        if room == 0:
            time.sleep(FREE_POLL_SECONDS)
            continue
        requests: list[delivery.Request] = []
        try:
            with session_scope() as session:
                found = delivery.claim_due(session, room)
            requests = found  # committed: these are ours to send
        finally:
            _senders.release(room - len(requests))
        for request in requests:
            _senders.start(request)
        claimed += len(requests)
        if len(requests) < room:
            break  # nothing more is due now
    return claimed
