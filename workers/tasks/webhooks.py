"""Webhook delivery in the worker: a tick each second claims what is due, and a pool of sender
threads in the worker process sends it.

The tick claims only as many deliveries as the pool has idle threads, so every claimed request
is sent at once and its lease (the request's deadline and a margin) never runs out while it
waits; the tick itself returns in milliseconds, and a slow receiver holds a sender thread, never
one of the worker's task threads. Each sender, once its delivery is delivered or given up, goes
on with the same subject's next event to the same endpoint when it is due.
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


class _Senders:
    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="webhook-sender")

    def idle(self) -> int:
        with self.lock:
            return self.size - self.busy

    def start(self, request: delivery.Request) -> None:
        with self.lock:
            self.busy += 1
        self.pool.submit(self._run, request)

    def _run(self, request: delivery.Request) -> None:
        try:
            deliver_in_turn(request)
        except Exception:
            # Its lease runs out and the delivery is claimed again: sent at least once.
            log.exception("webhook attempt %s failed to run", request.attempt_id)
        finally:
            with self.lock:
                self.busy -= 1


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
    """Claim what is due, as much as the idle senders can take, and hand it to them. A tick
    or a sender lost with its worker loses nothing: what it claimed is due again once the
    claims run out."""
    claimed = 0
    ends = time.monotonic() + TICK_SECONDS
    while time.monotonic() < ends:
        room = min(_senders.idle(), delivery.CLAIM_BATCH)
        if room <= 0:
            break
        with session_scope() as session:
            requests = delivery.claim_due(session, room)
        for request in requests:
            _senders.start(request)
        claimed += len(requests)
        if len(requests) < room:
            break
    return claimed
