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
    with session_scope() as session:
        request = delivery.start(session, attempt_id)
    if request is None:
        return "not sent: claimed again, sent again, delivered or given up meanwhile"
    outcome = delivery.send(request)
    with session_scope() as session:
        return delivery.record(session, attempt_id, outcome)
