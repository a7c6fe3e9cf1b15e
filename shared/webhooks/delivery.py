"""Delivering events to endpoints: at least once, in each subject's order, retried from the
database.

A delivery row is written for each endpoint an event matches, in the transaction that appends
the event (shared.webhooks.fanout), so an event that committed is owed to its endpoints and
none is lost.
Every second a tick claims the due deliveries (FOR UPDATE SKIP LOCKED, so ticks at once never
share one) and hands each to a worker, with an attempt row of its own. The attempt's claim
is its lease: a delivery whose worker never started it, or died mid-request, is due again once
the lease runs out, and is sent again (at least once, never "at most").

Outcomes: 2xx is delivered. 410 Gone gives it up and disables the endpoint. Anything else
(another status, no answer within WEBHOOK_TIMEOUT_SECONDS, a refused address) is tried again
after the next wait of WEBHOOK_RETRY_SCHEDULE_SECONDS, with jitter, until
WEBHOOK_RETRY_WINDOW_SECONDS after its first attempt: the last attempt falls at the window's
end, and if it fails too the delivery is given up; when the endpoint delivered nothing since
before the delivery's first attempt, the endpoint is disabled as well, with an event saying so.

A subject's events reach an endpoint in their order: a delivery is not due while an earlier
event of its subject is still pending for the same endpoint (delivered or given up, it no
longer holds the later ones). Other subjects are not held up.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased, selectinload

from shared.config import get_settings
from shared.events import outbox, types
from shared.models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    new_id,
    utcnow,
)
from shared.webhooks import endpoints, sending
from shared.webhooks.fanout import DELIVERED, FAILED, PENDING, matches, owed
from shared.webhooks.schemas import EndpointOut

# Deliveries one tick claims at a time.
CLAIM_BATCH = 200
# Beyond the request's own deadline, before an attempt in flight counts as lost.
LOST_MARGIN_SECONDS = 5.0
# Each wait is the schedule's, made up to this much shorter or longer at random, so endpoints
# that failed together are not all tried again at one moment.
JITTER = 0.2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What one attempt sends, read when it starts."""

    attempt_id: str
    url: str
    message: sending.Message
    secrets: list[str]


def claim_due(session: Session, limit: int = CLAIM_BATCH) -> list[str]:
    """Claim up to `limit` due deliveries of enabled endpoints, oldest due first; the ids of
    their new attempts, each to be started by a worker once this commits."""
    now = utcnow()
    earlier = aliased(WebhookDelivery)
    deliveries = list(
        session.scalars(
            select(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.state == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.enabled,
                ~exists().where(
                    earlier.endpoint_id == WebhookDelivery.endpoint_id,
                    earlier.subject_type == WebhookDelivery.subject_type,
                    earlier.subject_id == WebhookDelivery.subject_id,
                    earlier.state == PENDING,
                    earlier.sequence < WebhookDelivery.sequence,
                ),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
    )
    return _claim(session, deliveries, now)


def _claim(session: Session, deliveries: list[WebhookDelivery], now: datetime) -> list[str]:
    lease = timedelta(seconds=get_settings().WEBHOOK_CLAIM_SECONDS)
    attempts = []
    for delivery in deliveries:
        attempt = WebhookAttempt(id=new_id(), delivery_id=delivery.id, attempted_at=now)
        attempts.append(attempt)
        delivery.claim = attempt.id
        delivery.next_attempt_at = now + lease
    session.add_all(attempts)
    session.flush()
    return [attempt.id for attempt in attempts]


def claim_next(session: Session, attempt_id: str) -> str | None:
    """Once the attempt's delivery is delivered or given up: the same subject's next delivery to
    the same endpoint, claimed at once if it is due (its new attempt's id), so a subject's events
    follow each other without waiting a tick apart. None when there is none, it is not due, or
    another transaction holds it."""
    done = session.scalar(
        select(WebhookDelivery)
        .join(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
        .where(WebhookAttempt.id == attempt_id, WebhookDelivery.state != PENDING)
    )
    if done is None:
        return None
    now = utcnow()
    # The lowest pending one, whoever holds it: skipping a locked one would send a later event
    # before it.
    following = session.scalar(
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.endpoint_id == done.endpoint_id,
            WebhookDelivery.subject_type == done.subject_type,
            WebhookDelivery.subject_id == done.subject_id,
            WebhookDelivery.state == PENDING,
            WebhookEndpoint.enabled,
        )
        .order_by(WebhookDelivery.sequence)
        .limit(1)
    )
    if following is None:
        return None
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == following,
            WebhookDelivery.state == PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    if delivery is None:
        return None
    [claimed] = _claim(session, [delivery], now)
    return claimed


def start(session: Session, attempt_id: str) -> Request | None:
    """The attempt's request, if its claim still holds (None: the delivery was claimed again,
    sent again by the customer, delivered or given up meanwhile); its lease now runs to the
    request's deadline and a margin."""
    settings = get_settings()
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.claim == attempt_id, WebhookDelivery.state == PENDING)
        .with_for_update()
    )
    if delivery is None:
        return None
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    event = session.get(Event, delivery.event_id)
    if endpoint is None or event is None or not endpoint.enabled:
        return None
    now = utcnow()
    delivery.attempts += 1
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.next_attempt_at = now + timedelta(
        seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LOST_MARGIN_SECONDS
    )
    session.execute(
        update(WebhookAttempt).where(WebhookAttempt.id == attempt_id).values(attempted_at=now)
    )
    return Request(
        attempt_id=attempt_id,
        url=endpoint.url,
        message=sending.message(
            event.id,
            event.type,
            event.created_at,
            event.data,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            sequence=event.sequence,
        ),
        secrets=endpoints.signing_secrets(endpoint, now),
    )


def send(request: Request) -> sending.Outcome:
    return sending.post(
        request.url, request.message, request.secrets, get_settings().WEBHOOK_TIMEOUT_SECONDS
    )


def record(session: Session, attempt_id: str, outcome: sending.Outcome) -> str:
    """Keep the attempt's outcome, and move its delivery on if the attempt still holds its
    claim."""
    attempted_at = session.scalar(
        update(WebhookAttempt)
        .where(WebhookAttempt.id == attempt_id)
        .values(
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=None if outcome.error is None else outcome.error[:500],
        )
        .returning(WebhookAttempt.attempted_at)
    )
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.claim == attempt_id, WebhookDelivery.state == PENDING)
        .with_for_update()
    )
    if delivery is None:
        return "recorded; the delivery has moved on without this attempt"
    now = utcnow()
    delivery.claim = None
    if outcome.delivered:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
        # Only an endpoint that was failing is written (and locked): a steady stream of
        # deliveries to one endpoint does not queue on its row.
        session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == delivery.endpoint_id,
                WebhookEndpoint.failing_since.is_not(None),
            )
            .values(failing_since=None)
        )
        return "delivered"
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == delivery.endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=attempted_at or now)
    )
    if outcome.status_code == 410:
        _give_up(delivery)
        _disable(session, delivery.endpoint_id, "answered 410 Gone")
        return "gone: endpoint disabled"
    assert delivery.first_attempt_at is not None
    window_end = delivery.first_attempt_at + timedelta(
        seconds=get_settings().WEBHOOK_RETRY_WINDOW_SECONDS
    )
    if now >= window_end:
        _give_up(delivery)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id, populate_existing=True)
        if endpoint is not None and _failing_throughout(endpoint, delivery.first_attempt_at):
            _disable(session, endpoint.id, "every attempt failed for the retry window")
            return f"given up after {delivery.attempts} attempts: endpoint disabled"
        return f"given up after {delivery.attempts} attempts"
    delivery.next_attempt_at = min(now + retry_wait(delivery.attempts), window_end)
    return (
        f"attempt {delivery.attempts} failed ({outcome.error}); next at {delivery.next_attempt_at}"
    )


def retry_wait(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the schedule's, the last one repeated,
    with jitter."""
    schedule = get_settings().WEBHOOK_RETRY_SCHEDULE_SECONDS
    seconds = schedule[min(attempts, len(schedule)) - 1]
    return timedelta(seconds=seconds * random.uniform(1 - JITTER, 1 + JITTER))


def _failing_throughout(endpoint: WebhookEndpoint, since: datetime) -> bool:
    return endpoint.failing_since is not None and endpoint.failing_since <= since


def _give_up(delivery: WebhookDelivery) -> None:
    delivery.state, delivery.next_attempt_at = FAILED, None


def _disable(session: Session, endpoint_id: str, reason: str) -> None:
    """Disable the endpoint, and say so with an event (once, however many deliveries give up
    at the same moment)."""
    endpoint = session.get(
        WebhookEndpoint, endpoint_id, with_for_update=True, populate_existing=True
    )
    if endpoint is None or not endpoint.enabled:
        return
    endpoints.disable(endpoint, reason)
    session.flush()
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
    outbox.append(
        session,
        endpoint.account_id,
        types.WEBHOOK_ENDPOINT_DISABLED,
        types.WEBHOOK_ENDPOINT,
        endpoint.id,
        EndpointOut.model_validate(endpoint),
    )


def _requeue(session: Session, rows: list[dict[str, object]]) -> int:
    """Owe these deliveries (again): each starts afresh, with its earlier attempts kept."""
    if not rows:
        return 0
    statement = insert(WebhookDelivery).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[WebhookDelivery.endpoint_id, WebhookDelivery.event_id],
            set_={
                "state": PENDING,
                "attempts": 0,
                "first_attempt_at": None,
                "next_attempt_at": statement.excluded.next_attempt_at,
                "claim": None,
                "delivered_at": None,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
    return len(rows)


def resend(session: Session, event: Event) -> int:
    """Send the event again to every enabled endpoint of its account that it matches."""
    found = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events)
        .where(WebhookEndpoint.account_id == event.account_id, WebhookEndpoint.enabled)
        .with_for_update(read=True, key_share=True)
    ).all()
    return _requeue(
        session,
        [
            owed(event, endpoint_id)
            for endpoint_id, patterns in found
            if matches(patterns, event.type)
        ],
    )


# Events one replay sends again at most: a replay of more is refused rather than half done.
REPLAY_MAX = 10_000


class ReplayTooLarge(ValueError):
    pass


def replay(session: Session, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Send the endpoint again every event of its account it matches since `since` (at or
    after), each subject's in its order."""
    matching = or_(*(Event.type.like(types.like(p), escape="\\") for p in endpoint.events))
    query = (
        select(Event)
        .where(Event.account_id == endpoint.account_id, Event.created_at >= since, matching)
        .order_by(Event.id)
        .limit(REPLAY_MAX + 1)
    )
    found = list(session.scalars(query))
    if len(found) > REPLAY_MAX:
        raise ReplayTooLarge(
            f"more than {REPLAY_MAX:,} events since then: replay from a later time, in steps"
        )
    rows = [owed(event, endpoint.id) for event in found]
    total = 0
    for at in range(0, len(rows), 1000):
        total += _requeue(session, rows[at : at + 1000])
    return total


def page(
    session: Session, endpoint: WebhookEndpoint, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """The endpoint's deliveries, newest first, each with every attempt."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    items = list(
        session.scalars(
            query.options(selectinload(WebhookDelivery.attempt_rows))
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return items, total
