"""Webhook delivery in the worker: a claimer thread claims what is due, a pool of sender threads
sends it, and a recorder thread records what each attempt came to.

The claimer claims when a transaction that wrote deliveries says so (shared.webhooks.wakeup),
when the recorder has recorded attempts (a subject's next event is due once the one before it is
through, and senders are free again), and at least once a second whatever it heard: the beat's
tick wakes it (and starts it in the first worker process the tick reaches), and it wakes by
itself when nothing else does. The poll is the safety net: a word that never came costs an event
a second's wait, never its delivery, and retries come due from the database.

It claims only as many deliveries as the pool has idle threads, so every claimed request is sent
at once and its lease (the request's deadline and a margin) never runs out while it waits; a
slow receiver holds a sender thread, never one of the worker's task threads.

The recorder records the outcomes that came in while it gathered, in one transaction: one
statement and one commit for many attempts, where a transaction for each cost the worker about
three times the CPU of the request itself. An outcome lost with its worker before it was
recorded loses nothing: its lease runs out and the delivery is sent again (at least once).
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.queue import get_celery
from shared.webhooks import delivery, jobs, sending, wakeup

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
# How long the recorder lets outcomes gather before it records them, together: long enough that
# a steady stream is recorded many at a time, short against the lag an event may have.
RECORD_GATHER_SECONDS = 0.05
# Outcomes one transaction records at most.
RECORD_BATCH = 200
# The longest the recording of many waits on a lock another transaction holds on one of their
# deliveries (a replay, an endpoint's deletion), before they are recorded one by one: the rest
# are not held up behind it.
RECORD_LOCK_WAIT = text("SET LOCAL lock_timeout = '1s'")


class _Senders:
    """The pool, and how many of its threads are taken: the claimer reserves threads before it
    claims, so what it claims is sent at once. Each outcome goes to `sent`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="webhook-sender")
        self.sent: Callable[[delivery.Request, sending.Outcome], None] = lambda *_: None

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
            outcome = delivery.send(request)
        except Exception:
            # Its lease runs out and the delivery is claimed again: sent at least once.
            log.exception("webhook attempt %s failed to run", request.attempt_id)
            return
        finally:
            # Free before the outcome is handed on: the claimer its recording wakes finds room.
            self.release(1)
        self.sent(request, outcome)


def record(outcomes: list[tuple[delivery.Request, sending.Outcome]]) -> list[str]:
    """Record the attempts' outcomes: the delivered ones in one transaction (one by one if that
    fails, or waits on a lock longer than RECORD_LOCK_WAIT), each failed one in its own, as its
    next attempt is scheduled, or its endpoint disabled, under locks of their own. What each
    record said, in their order; an outcome not recorded is sent again once its lease runs
    out."""
    delivered = [pair for pair in outcomes if pair[1].delivered]
    said = dict(
        zip((r.attempt_id for r, _ in delivered), _record_delivered(delivered), strict=True)
    )
    for request, outcome in outcomes:
        if not outcome.delivered:
            said[request.attempt_id] = _recorded(
                lambda session, r=request, o=outcome: delivery.record_failed(session, r, o),
                request,
            )
    return [said[request.attempt_id] for request, _ in outcomes]


def _record_delivered(delivered: list[tuple[delivery.Request, sending.Outcome]]) -> list[str]:
    if not delivered:
        return []
    try:
        with session_scope() as session:
            session.execute(RECORD_LOCK_WAIT)
            return delivery.record_delivered(session, delivered)
    except Exception:
        log.exception("recording %d webhook attempts together failed; one by one", len(delivered))
    return [
        _recorded(lambda session, pair=pair: delivery.record_delivered(session, [pair])[0], pair[0])
        for pair in delivered
    ]


def _recorded(write: Callable[[Session], str], request: delivery.Request) -> str:
    """What `write` said, in a transaction of its own; "not recorded" if it failed."""
    try:
        with session_scope() as session:
            said = write(session)
    except Exception:
        log.exception("recording webhook attempt %s failed", request.attempt_id)
        return "not recorded"
    return said


class _Recorder:
    """The outcomes the senders hand in, recorded many at a time; `recorded` is called after
    each transaction."""

    def __init__(self) -> None:
        # Kept across restarts of the thread: what one left is the next one's to record.
        self.outcomes: queue.SimpleQueue[tuple[delivery.Request, sending.Outcome]] = (
            queue.SimpleQueue()
        )
        self.recorded: Callable[[], None] = lambda: None

    def put(self, request: delivery.Request, outcome: sending.Outcome) -> None:
        self.outcomes.put((request, outcome))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                first = self.outcomes.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if self.outcomes.qsize() < RECORD_BATCH:
                stop.wait(RECORD_GATHER_SECONDS)
            gathered = [first]
            while len(gathered) < RECORD_BATCH:
                try:
                    gathered.append(self.outcomes.get_nowait())
                except queue.Empty:
                    break
            try:
                for (request, _), said in zip(gathered, record(gathered), strict=True):
                    if said != "delivered":
                        log.info("webhook attempt %s: %s", request.attempt_id, said)
            except Exception:
                # Not recorded: each is sent again once its lease runs out.
                log.exception("recording %d webhook attempts failed", len(gathered))
            self.recorded()


def claim_due(senders: _Senders) -> int:
    """Claim what is due, as much as the idle senders can take, and hand it to them, batch after
    batch while full ones come back: how many. A claim lost with its worker loses nothing: what
    it claimed is due again once its lease runs out. What this leaves (held by the idle senders'
    number, an endpoint's share or a subject's order) goes once the recorder has recorded what
    holds it, which wakes the claimer."""
    claimed = 0
    while True:
        room = senders.reserve(delivery.CLAIM_BATCH)
        if room == 0:
            return claimed
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
            return claimed


class _Claimer:
    """One thread that claims for the process's senders whenever it is woken, one that listens
    for the word that deliveries were written, and the senders' recorder; started on the first
    tick."""

    def __init__(self, senders: _Senders) -> None:
        self.senders = senders
        self.recorder = _Recorder()
        senders.sent = self.recorder.put
        self.recorder.recorded = self.wake
        self.woken = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def wake(self) -> None:
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
                    target=self.recorder.run,
                    args=(self.stop,),
                    name="webhook-recorder",
                    daemon=True,
                ),
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
                claim_due(self.senders)
            except Exception:
                log.exception("claiming due webhook deliveries failed; trying again")
                stop.wait(POLL_SECONDS)


_senders = _Senders(SENDERS)
_claimer = _Claimer(_senders)


@app.task(name=jobs.TICK, acks_late=False)
def tick() -> None:
    """The poll: start this process's claimer if it is not running, and wake it."""
    _claimer.ensure_running()
    _claimer.wake()
