"""Owing each new event to the endpoints it matches, in the transaction that appends it: an
event that committed is owed, one that rolled back never was, and none is lost between.

The event log calls `fan_out` for every event it appends; the deliveries it writes are sent by
shared.webhooks.delivery, claimed as soon as the transaction has committed (shared.webhooks.wakeup).

An endpoint the customer made gets the account's events its patterns match. A per-call URL's
endpoint (shared.webhooks.per_call) gets the events of the calls and batches whose `webhook`
is its URL, as the event's data (the subject as its GET shows it) says: what routes an event is
what the customer reads in it, and no subject is read back to route it.
"""

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.events import types
from shared.models import Event, WebhookDelivery, WebhookEndpoint, new_id, utcnow
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
    data: dict[str, Any]


# The subjects that may name a webhook URL of their own.
PER_CALL_SUBJECTS = (types.CALL, types.BATCH)


def matches(patterns: list[str], event_type: str) -> bool:
    return any(types.matches(pattern, event_type) for pattern in patterns)


def webhook_of(event: Appended) -> str | None:
    """The per-call URL the event's subject names, if any."""
    if event.subject_type not in PER_CALL_SUBJECTS:
        return None
    url = event.data.get("webhook")
    return url if isinstance(url, str) else None


def selects(endpoint: WebhookEndpoint) -> ColumnElement[bool]:
    """Which of its account's events the endpoint gets, as a condition on events: the rule
    `recipients` applies to each new one."""
    if endpoint.per_call:
        return and_(
            Event.subject_type.in_(PER_CALL_SUBJECTS),
            Event.data["webhook"].astext == endpoint.url,
        )
    return or_(*(Event.type.like(types.like(p), escape="\\") for p in endpoint.events))


def recipients(session: Session, events: Sequence[Appended]) -> list[tuple[Appended, str]]:
    """Each event with each enabled endpoint of its account that gets it. An account without
    endpoints costs one indexed read. The endpoints are read FOR KEY SHARE: one deleted
    meanwhile is either gone from the list or waits for this transaction, and never fails the
    status change that appended the event."""
    if not events:
        return []
    urls = {url for event in events if (url := webhook_of(event)) is not None}
    found = session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.account_id,
            WebhookEndpoint.events,
            WebhookEndpoint.per_call,
            WebhookEndpoint.url,
        )
        .where(
            WebhookEndpoint.account_id.in_({event.account_id for event in events}),
            WebhookEndpoint.enabled,
            # Only the per-call URLs these events name: an account may have many.
            or_(~WebhookEndpoint.per_call, WebhookEndpoint.url.in_(urls))
            if urls
            else ~WebhookEndpoint.per_call,
        )
        .with_for_update(read=True, key_share=True)
    ).all()
    return [
        (event, endpoint_id)
        for event in events
        for endpoint_id, account_id, patterns, per_call, url in found
        if account_id == event.account_id
        and (webhook_of(event) == url if per_call else matches(patterns, event.type))
    ]


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
    """Owe each event to each enabled endpoint of its account that gets it (`recipients`); the
    count of deliveries."""
    rows = [owed(event, endpoint_id) for event, endpoint_id in recipients(session, events)]
    if rows:
        session.execute(insert(WebhookDelivery).on_conflict_do_nothing(), rows)
        wakeup.after_commit(session)
    return len(rows)
