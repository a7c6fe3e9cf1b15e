"""Owing each new event to the endpoints it matches, in the transaction that appends it: an
event that committed is owed, one that rolled back never was, and none is lost between.

The event log calls `fan_out` for every event it appends; the deliveries it writes are sent by
shared.webhooks.delivery, claimed as soon as the transaction has committed (shared.webhooks.wakeup).
"""

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.events import types
from shared.models import WebhookDelivery, WebhookEndpoint, new_id, utcnow
from shared.webhooks import wakeup

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Appended(Protocol):
    """An event as the log wrote it: an Event row, or the log's own record of one."""

    id: str
    account_id: str
    type: str
    subject_type: str
    subject_id: str
    sequence: int


def matches(patterns: list[str], event_type: str) -> bool:
    return any(types.matches(pattern, event_type) for pattern in patterns)


def owed(event: Appended, endpoint_id: str) -> dict[str, object]:
    """A pending delivery of the event to the endpoint, due now, as a row to insert."""
    now = utcnow()
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "event_type": event.type,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "sequence": event.sequence,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def fan_out(session: Session, events: Sequence[Appended]) -> int:
    """Owe each event to each enabled endpoint of its account that it matches; the count of
    deliveries. An account without endpoints costs one indexed read. The endpoints are read
    FOR KEY SHARE: one deleted meanwhile is either gone from the list or waits for this
    transaction, and never fails the status change that appended the event."""
    if not events:
        return 0
    found = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.account_id, WebhookEndpoint.events)
        .where(
            WebhookEndpoint.account_id.in_({event.account_id for event in events}),
            WebhookEndpoint.enabled,
        )
        .with_for_update(read=True, key_share=True)
    ).all()
    rows = [
        owed(event, endpoint_id)
        for event in events
        for endpoint_id, account_id, patterns in found
        if account_id == event.account_id and matches(patterns, event.type)
    ]
    if rows:
        session.execute(insert(WebhookDelivery).on_conflict_do_nothing(), rows)
        wakeup.after_commit(session)
    return len(rows)
