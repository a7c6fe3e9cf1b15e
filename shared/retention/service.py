"""Data kept no longer than needed: Twilio's raw callback parameters, SMS bodies and Stripe event
payloads are emptied once older than RETENTION_DAYS. The records stay (statuses, times,
durations, costs, the timeline, the ids that deduplicate deliveries); only the payloads go.

The dispatchers' turns (`dispatch_turns`, `sms_turns`: when each group last had its turn) of
groups that owe nothing and were last served more than TURNS_KEPT ago are deleted by the same
purge: a finished batch's turn, or an account's that stopped calling, would otherwise stay for
good.

Webhook deliveries delivered or given up, with their attempts, are deleted once their last
change is older than RETENTION_DAYS; a pending one never is. The events they carried stay.

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
# A group served within the hour may be between two of its turns (paused, waiting for a line or
# for credits); one idle longer is first in turn with or without its row, since every group
# still dialing was served more recently.
TURNS_KEPT = timedelta(hours=1)


@dataclass(frozen=True)
class Purged:
    call_event_params: int
    sms_bodies: int
    stripe_payloads: int
    dispatch_turns: int
    sms_turns: int
    webhook_deliveries: int
    webhook_attempts: int


def cutoff() -> datetime:
    return utcnow() - timedelta(days=get_settings().RETENTION_DAYS)


def purge(before: datetime, batch: int = BATCH) -> Purged:
    """Empty the payloads of rows created before `before`, batch by batch, delete the webhook
    deliveries over before it, and the turns of groups idle for TURNS_KEPT."""
    idle_since = utcnow() - TURNS_KEPT
    deliveries, attempts = _deliveries_in_batches(before, batch)
    return Purged(
        call_event_params=_in_batches(repository.empty_call_event_params, before, batch),
        sms_bodies=_in_batches(repository.empty_sms_bodies, before, batch),
        stripe_payloads=_in_batches(repository.empty_stripe_payloads, before, batch),
        dispatch_turns=_in_batches(repository.delete_idle_dispatch_turns, idle_since, batch),
        sms_turns=_in_batches(repository.delete_idle_sms_turns, idle_since, batch),
        webhook_deliveries=deliveries,
        webhook_attempts=attempts,
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


def _deliveries_in_batches(before: datetime, batch: int) -> tuple[int, int]:
    deliveries = attempts = 0
    while True:
        with session_scope() as session:
            gone, their_attempts = repository.delete_finished_deliveries(session, before, batch)
        deliveries, attempts = deliveries + gone, attempts + their_attempts
        if gone < batch:
            return deliveries, attempts
