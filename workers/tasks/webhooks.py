"""Webhook tasks: the tick that claims due deliveries, and each attempt."""

import time

from shared.db import session_scope
from shared.queue import get_celery
from shared.webhooks import delivery, jobs

app = get_celery()

# A tick claims batch after batch while a full one comes back, for at most this long: the
# next tick is a second away.
TICK_SECONDS = 2.0


@app.task(name=jobs.TICK, acks_late=False)
def tick() -> int:
    """Claim what is due and hand each attempt to a worker. A tick lost with its worker loses
    nothing: what it claimed is due again when the claims run out."""
    claimed = 0
    ends = time.monotonic() + TICK_SECONDS
    while True:
        with session_scope() as session:
            attempt_ids = delivery.claim_due(session)
            for attempt_id in attempt_ids:
                jobs.deliver(session, attempt_id)
        claimed += len(attempt_ids)
        if len(attempt_ids) < delivery.CLAIM_BATCH or time.monotonic() > ends:
            return claimed


# Not acknowledged late: a message redelivered after its worker died would find its attempt's
# claim long taken again (the database, not the broker, sends a lost attempt again).
@app.task(name=jobs.DELIVER, acks_late=False)
def deliver(attempt_id: str) -> str:
    """The attempt, then the same subject's next event to the same endpoint, and so on while
    each is delivered (or given up) and the next is due."""
    said: list[str] = []
    next_attempt: str | None = attempt_id
    while next_attempt is not None:
        with session_scope() as session:
            request = delivery.start(session, next_attempt)
        if request is None:
            said.append("not sent: claimed again, sent again, delivered or given up meanwhile")
            break
        outcome = delivery.send(request)
        with session_scope() as session:
            said.append(delivery.record(session, next_attempt, outcome))
            next_attempt = delivery.claim_next(session, next_attempt)
    return "; ".join(said)
