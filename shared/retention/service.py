"""Data kept no longer than needed: Twilio's raw callback parameters, SMS bodies and Stripe event
payloads are emptied once older than RETENTION_DAYS. The records stay (statuses, times,
durations, costs, the timeline, the ids that deduplicate deliveries); only the payloads go.

Each batch is its own short transaction of at most BATCH rows, so a purge of months of rows
never holds a lock for long, and live traffic never waits on it."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.db import session_scope
from shared.models import utcnow
from shared.retention import repository

BATCH = 1000


@dataclass(frozen=True)
class Purged:
    call_event_params: int
    sms_bodies: int
    stripe_payloads: int


def cutoff() -> datetime:
    return utcnow() - timedelta(days=get_settings().RETENTION_DAYS)


def purge(before: datetime, batch: int = BATCH) -> Purged:
    """Empty the payloads of rows created before `before`, batch by batch."""
    return Purged(
        call_event_params=_in_batches(repository.empty_call_event_params, before, batch),
        sms_bodies=_in_batches(repository.empty_sms_bodies, before, batch),
        stripe_payloads=_in_batches(repository.empty_stripe_payloads, before, batch),
    )


def _in_batches(step: Callable[[Session, datetime, int], int], before: datetime, batch: int) -> int:
    total = 0
    while True:
        with session_scope() as session:
            emptied = step(session, before, batch)
        total += emptied
        # A short batch: nothing left, or only rows someone holds now (the next run's).
        if emptied < batch:
            return total
