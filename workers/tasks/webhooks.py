"""Webhook delivery in the worker: a claimer thread claims what is due, and a pool of sender
threads in the worker process sends it.

The claimer claims when a transaction that wrote deliveries says so (shared.webhooks.wakeup),
when a sender comes free while more may be due, and at least once a second whatever it heard:
the beat's tick wakes it (and starts it in the first worker process the tick reaches), and it
wakes by itself when nothing else does. The poll is the safety net: a word that never came costs
an event a second's wait, never its delivery, and retries come due from the database.

It claims only as many deliveries as the pool has idle threads, so every claimed request is sent
at once and its lease (the request's deadline and a margin) never runs out while it waits; a
slow receiver holds a sender thread, never one of the worker's task threads. Each sender, once
its delivery is delivered or given up, goes on with the same subject's next event to the same
endpoint when it is due.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from shared.db import session_scope
from shared.queue import get_celery
from shared.webhooks import delivery, jobs, wakeup

log = logging.getLogger(__name__)
app = get_celery()

# Requests in flight at once per worker process: at 100 deliveries a second of 50 ms each, five
# are busy (Little's law); the rest is room for receivers that take their time to answer.
SENDERS = 32
# The longest the claimer waits between claims when nothing wakes it.
POLL_SECONDS = 1.0
# After a wake-up, how long the claimer lets others gather before it claims: the transactions
# committing meanwhile are claimed together, in one query rather than one each.
GATHER_SECONDS = 0.02


class _Senders:
    """The pool, and how many of its threads are taken: the claimer reserves threads before it
    claims, so what it claims is sent at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="webhook-sender")
        # Called when a sender comes free.
        self.freed = lambda: None

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
            self.freed()


def deliver_in_turn(request: delivery.Request | None) -> list[str]:
    """Send the request, record its outcome, and go on with its subject's next event while
    each is through and the next is due: what each record said."""
    said = []
    while request is not None:
        outcome = delivery.send(request)
        with session_scope() as session:
            record, request = delivery.record_and_next(session, request, outcome)
            said.append(record)
    return said


def claim_due(senders: _Senders) -> tuple[int, bool]:
    """Claim what is due, as much as the idle senders can take, and hand it to them, batch after
    batch while full ones come back: how many, and whether more may be due (a batch cut short by
    the idle senders or by an endpoint's share, which a sender coming free may change). A claim
    lost with its worker loses nothing: what it claimed is due again once its lease runs out."""
    claimed = 0
    while True:
        room = senders.reserve(delivery.CLAIM_BATCH)
        if room == 0:
            return claimed, True
        requests: list[delivery.Request] = []
        try:
            with session_scope() as session:
                found = delivery.claim_due(session, room)
            requests = found  # committed: these are ours to send
        finally:
            senders.release(room - len(requests))
        for request in requests:
            senders.start(request)
        claimed += len(requests)
        if len(requests) < room:
            # None found: nothing is due. Some: the rest may be held by an endpoint's share.
            return claimed, bool(requests)


class _Claimer:
    """One thread that claims for the process's senders whenever it is woken, and one that
    listens for the word that deliveries were written; started on the first tick."""

    def __init__(self, senders: _Senders) -> None:
        self.senders = senders
        self.woken = threading.Event()
        self.stop = threading.Event()
        # Whether the last claim left work that a sender coming free may let it claim.
        self.more = False
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        senders.freed = self._freed

    def wake(self) -> None:
        self.woken.set()

    def _freed(self) -> None:
        if self.more:
            self.woken.set()

    def ensure_running(self) -> None:
        with self.lock:
            if self.threads and all(t.is_alive() for t in self.threads):
                return
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=2)
            self.stop = threading.Event()
            self.threads = [
                threading.Thread(target=self._claim, name="webhook-claimer", daemon=True),
                threading.Thread(
                    target=wakeup.listen,
                    args=(self.wake, self.stop),
                    name="webhook-listener",
                    daemon=True,
                ),
            ]
            for thread in self.threads:
                thread.start()

    def _claim(self) -> None:
        stop = self.stop
        while not stop.is_set():
            if self.woken.wait(POLL_SECONDS):
                stop.wait(GATHER_SECONDS)
            self.woken.clear()
            try:
                _, more = claim_due(self.senders)
                # A claim that found nothing while senders are busy may have been held back by
                # an endpoint's share, as the one before it was: what that one left is owed
                # still, and goes when a sender comes free, not at the next poll.
                self.more = more or (self.more and self.senders.busy > 0)
            except Exception:
                log.exception("claiming due webhook deliveries failed; trying again")
                self.more = False
                stop.wait(POLL_SECONDS)


_senders = _Senders(SENDERS)
_claimer = _Claimer(_senders)


@app.task(name=jobs.TICK, acks_late=False)
def tick() -> None:
    """The poll: start this process's claimer if it is not running, and wake it."""
    _claimer.ensure_running()
    _claimer.wake()
