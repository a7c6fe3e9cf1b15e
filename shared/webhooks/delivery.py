"""Delivering events to endpoints: at least once, in each subject's order, retried from the
database.

A delivery row is written for each endpoint an event matches, in the transaction that appends
the event (shared.webhooks.fanout), so an event that committed is owed to its endpoints and
none is lost. The worker claims the due deliveries as soon as the transaction that wrote them has
committed, and at least every second (FOR UPDATE SKIP LOCKED, so claims at once never share
one), each with an attempt row of its own, and sends them at once. The claim
is a lease of WEBHOOK_TIMEOUT_SECONDS and a margin: a delivery whose worker died mid-request is
due again once it runs out, and is sent again (at least once, never "at most").

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from shared.config import get_settings
from shared.events import outbox, types
from shared.models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from shared.webhooks import endpoints, sending, wakeup
from shared.webhooks.fanout import FAILED, PENDING, owed, recipients, selects
from shared.webhooks.schemas import EndpointOut

# Deliveries one tick claims at a time.
CLAIM_BATCH = 200
# How many of the oldest due deliveries a claim of N chooses its N from, an endpoint's share
# capped: a backlog of one endpoint larger than this still goes first.
CANDIDATES = 4
# Beyond the request's own deadline, before an attempt in flight counts as lost.
LOST_MARGIN_SECONDS = 5.0
# How stale an endpoint's last_delivered_at may be.
LAST_DELIVERED_RESOLUTION = timedelta(seconds=1)
# Each wait is the schedule's, made up to this much shorter or longer at random, so endpoints
# that failed together are not all tried again at one moment.
JITTER = 0.2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One attempt, claimed: what it sends, and what its outcome is recorded against."""

    attempt_id: str
    delivery_id: str
    endpoint_id: str
    subject_type: str
    subject_id: str
    attempted_at: datetime
    url: str
    message: sending.Message
    secrets: list[str]


# Claiming: the deliveries `chosen` selects (and locks) get a claim (their new attempt's id)
# whose lease runs for the request's deadline and a margin, and an attempt row; what their
# requests send is read in the same round trip. `chosen` is the selection below.
_CLAIMING = """
    claimed AS (
        UPDATE webhook_deliveries d
        SET claim = gen_random_uuid()::text, attempts = d.attempts + 1,
            first_attempt_at = coalesce(d.first_attempt_at, :now),
            next_attempt_at = :lease_ends, updated_at = :now
        FROM chosen WHERE d.id = chosen.id
        RETURNING d.id, d.claim, d.endpoint_id, d.event_id, d.subject_type, d.subject_id
    ),
    attempt AS (
        INSERT INTO webhook_attempts (id, delivery_id, attempted_at)
        SELECT claim, id, :now FROM claimed
    )
"""
_CLAIMED = """
    SELECT c.id AS delivery_id, c.claim, c.endpoint_id, c.subject_type, c.subject_id, e.url,
           CASE WHEN e.per_call THEN a.webhook_secret ELSE e.secret END AS secret,
           CASE WHEN e.per_call THEN a.webhook_previous_secret ELSE e.previous_secret END
               AS previous_secret,
           CASE WHEN e.per_call THEN a.webhook_previous_secret_expires_at
                ELSE e.previous_secret_expires_at END AS previous_secret_expires_at,
           ev.id AS event_id, ev.type, ev.created_at, ev.data, ev.sequence
    FROM claimed c
    JOIN webhook_endpoints e ON e.id = c.endpoint_id
    -- A per-call URL's endpoint is signed with its account's secret (shared.webhooks.per_call).
    LEFT JOIN accounts a ON e.per_call AND a.id = e.account_id
    JOIN events ev ON ev.id = c.event_id
"""
_CLAIM = "WITH chosen AS ({chosen}), " + _CLAIMING + _CLAIMED
# The statements here name the states ('pending', 'delivered': fanout.PENDING, DELIVERED) in
# their text rather than binding them: the plan PostgreSQL keeps for a statement prepared and
# run often (a generic plan, from its sixth run) can use the indexes of pending deliveries only
# if the statement itself says 'pending'. Bound, it read the endpoint's every delivery ever made.
# Due: pending, its time come, its endpoint enabled, and no earlier event of its subject
# pending for the same endpoint; oldest due first, skipping what another tick holds. Of the
# oldest candidates, an endpoint gets no more than WEBHOOK_ENDPOINT_CONCURRENCY requests in
# flight, its own counted: a slow endpoint with a backlog takes that many senders, never all of
# them, and the others' events go on. (The state and time are tested again on the locked row:
# one another tick claimed and committed meanwhile no longer passes.)
#
# Its plan must not depend on the table's statistics, taken by the last ANALYZE while next to
# nothing was pending: a burst of thousands then looks like one row, and the planner turned the
# order rule into a join over the whole backlog for each candidate. So the candidates are read
# from the due index in its order until enough are found, the endpoint and order rules are
# probes of one row each (OFFSET 0 keeps each a subquery run per candidate, never a join), the
# deliveries in flight are counted once per endpoint from their own small index, and the chosen
# rows are found again, to be locked, by their primary key.
_DUE = text(
    _CLAIM.format(
        chosen="""
        SELECT d.id FROM (
            SELECT ranked.id FROM (
                SELECT candidate.id, candidate.next_attempt_at,
                       row_number() OVER (
                           PARTITION BY candidate.endpoint_id ORDER BY candidate.next_attempt_at
                       ) + coalesce(flying.count, 0) AS place
                FROM (
                    SELECT c.id, c.endpoint_id, c.next_attempt_at FROM webhook_deliveries c
                    WHERE c.state = 'pending' AND c.next_attempt_at <= now()
                      AND (SELECT e.enabled FROM webhook_endpoints e
                           WHERE e.id = c.endpoint_id OFFSET 0)
                      AND NOT EXISTS (
                          SELECT 1 FROM webhook_deliveries earlier
                          WHERE earlier.endpoint_id = c.endpoint_id
                            AND earlier.subject_type = c.subject_type
                            AND earlier.subject_id = c.subject_id
                            AND earlier.state = 'pending'
                            AND earlier.sequence < c.sequence
                          OFFSET 0
                      )
                    ORDER BY c.next_attempt_at
                    LIMIT :candidates
                ) candidate
                LEFT JOIN (
                    SELECT f.endpoint_id, count(*) AS count FROM webhook_deliveries f
                    WHERE f.state = 'pending' AND f.claim IS NOT NULL AND f.next_attempt_at > now()
                    GROUP BY f.endpoint_id
                ) flying ON flying.endpoint_id = candidate.endpoint_id
            ) ranked
            WHERE ranked.place <= :per_endpoint
            ORDER BY ranked.next_attempt_at
            LIMIT :limit
        ) chosen_id
        JOIN webhook_deliveries d ON d.id = chosen_id.id
        -- IS TRUE: no partial index of pending deliveries matches, only the primary key does.
        WHERE (d.state = 'pending' AND d.next_attempt_at <= now()) IS TRUE
        FOR UPDATE OF d SKIP LOCKED
        """
    )
)


def read_due_in_order(session: Session) -> None:
    """For the rest of the transaction, keep the planner from reading the due index by a bitmap:
    a bitmap's rows come out of order, so the claim then reads and probes every due delivery of
    a backlog before it sorts and keeps the oldest (96 ms for 9,000, most of them held behind
    their subject's earlier event), where reading the index in its order stops once it has the
    candidates it wants (3 ms). The planner picks the bitmap when its figures, from the last
    ANALYZE, say next to nothing is due."""
    session.execute(text("SET LOCAL enable_bitmapscan = off"))


def claim_due(session: Session, limit: int = CLAIM_BATCH) -> list[Request]:
    """Claim up to `limit` due deliveries, each with a new attempt: the caller sends them now."""
    read_due_in_order(session)
    now = utcnow()
    params = {
        "limit": limit,
        "per_endpoint": get_settings().WEBHOOK_ENDPOINT_CONCURRENCY,
        "candidates": CANDIDATES * limit,
        **_claim_params(now),
    }
    return _requests(session.execute(_DUE, params).all(), now)


def _claim_params(now: datetime) -> dict[str, object]:
    lease = timedelta(seconds=get_settings().WEBHOOK_TIMEOUT_SECONDS + LOST_MARGIN_SECONDS)
    return {"now": now, "lease_ends": now + lease}


def _requests(rows: Sequence[Row[Any]], now: datetime) -> list[Request]:
    """The claimed rows' requests."""
    return [
        Request(
            attempt_id=row.claim,
            delivery_id=row.delivery_id,
            endpoint_id=row.endpoint_id,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            attempted_at=now,
            url=row.url,
            message=sending.message(
                row.event_id,
                row.type,
                row.created_at,
                row.data,
                subject_type=row.subject_type,
                subject_id=row.subject_id,
                sequence=row.sequence,
            ),
            secrets=endpoints.secrets_at(
                row.secret, row.previous_secret, row.previous_secret_expires_at, now
            ),
        )
        for row in rows
    ]


def send(request: Request) -> sending.Outcome:
    return sending.post(
        request.url, request.message, request.secrets, get_settings().WEBHOOK_TIMEOUT_SECONDS
    )


# Delivered attempts, many in one round trip: each one's outcome, its delivery's state (if the
# attempt still holds the claim), and each endpoint's last_delivered_at, written at most once a
# LAST_DELIVERED_RESOLUTION, and skipped while another transaction holds the endpoint's row (an
# update of the endpoint, a fan-out): the next record writes it. The deliveries are locked in
# the order of their ids, so two recorders never each hold one the other waits for. What comes
# back is the deliveries that moved.
_ALL_DELIVERED = text(
    """
    WITH outcomes AS (
        SELECT * FROM unnest(
            CAST(:attempt_ids AS text[]), CAST(:delivery_ids AS text[]),
            CAST(:status_codes AS integer[]), CAST(:latencies_ms AS integer[])
        ) AS o(attempt_id, delivery_id, status_code, latency_ms)
    ), outcome AS (
        UPDATE webhook_attempts a SET status_code = o.status_code, latency_ms = o.latency_ms
        FROM outcomes o WHERE a.id = o.attempt_id
    ), held AS (
        SELECT d.id FROM webhook_deliveries d JOIN outcomes o ON d.id = o.delivery_id
        WHERE d.claim = o.attempt_id AND d.state = 'pending'
        ORDER BY d.id
        FOR UPDATE OF d
    ), delivered AS (
        UPDATE webhook_deliveries d
        SET state = 'delivered', delivered_at = :now, next_attempt_at = NULL, claim = NULL,
            updated_at = :now
        FROM held WHERE d.id = held.id
        RETURNING d.id, d.endpoint_id
    ), stale AS (
        SELECT e.id FROM webhook_endpoints e
        WHERE e.id IN (SELECT endpoint_id FROM delivered)
          AND (e.last_delivered_at IS NULL OR e.last_delivered_at < :stale)
        FOR NO KEY UPDATE OF e SKIP LOCKED
    ), endpoint AS (
        UPDATE webhook_endpoints e SET last_delivered_at = :now FROM stale WHERE e.id = stale.id
    )
    SELECT id FROM delivered
    """
)


def record_delivered(
    session: Session, recorded: Sequence[tuple[Request, sending.Outcome]]
) -> list[str]:
    """Keep each delivered attempt's outcome, and move its delivery on if the attempt still
    holds its claim (a claim that ran out and was taken again, or a resend, moved it on without
    it), all in one statement: what each record said, in their order."""
    now = utcnow()
    moved = set(
        session.scalars(
            _ALL_DELIVERED,
            {
                "attempt_ids": [r.attempt_id for r, _ in recorded],
                "delivery_ids": [r.delivery_id for r, _ in recorded],
                "status_codes": [o.status_code for _, o in recorded],
                "latencies_ms": [o.latency_ms for _, o in recorded],
                "now": now,
                "stale": now - LAST_DELIVERED_RESOLUTION,
            },
        )
    )
    return ["delivered" if r.delivery_id in moved else MOVED_ON for r, _ in recorded]


def record_failed(session: Session, request: Request, outcome: sending.Outcome) -> str:
    """Keep a failed attempt's outcome, and if the attempt still holds its delivery's claim,
    schedule the next attempt or give the delivery up: what the record said."""
    session.execute(
        update(WebhookAttempt.__table__)
        .where(WebhookAttempt.id == request.attempt_id)
        .values(
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=None if outcome.error is None else outcome.error[:500],
        )
    )
    return _failed(session, request, outcome)


MOVED_ON = "recorded; the delivery has moved on without this attempt"


def _failed(session: Session, request: Request, outcome: sending.Outcome) -> str:
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == request.delivery_id,
            WebhookDelivery.claim == request.attempt_id,
            WebhookDelivery.state == PENDING,
        )
        .with_for_update()
    )
    if delivery is None:
        return MOVED_ON
    now = utcnow()
    delivery.claim = None
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
        if endpoint is not None and _nothing_delivered_since(endpoint, delivery.first_attempt_at):
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


def _nothing_delivered_since(endpoint: WebhookEndpoint, since: datetime) -> bool:
    last = endpoint.last_delivered_at
    return last is None or last + LAST_DELIVERED_RESOLUTION < since


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
    wakeup.after_commit(session)
    return len(rows)


def resend(session: Session, event: Event) -> int:
    """Send the event again to every enabled endpoint of its account that gets it."""
    return _requeue(
        session, [owed(event, endpoint_id) for _, endpoint_id in recipients(session, [event])]
    )


# Events one replay sends again at most: a replay of more is refused rather than half done.
REPLAY_MAX = 10_000


class ReplayTooLarge(ValueError):
    pass


def replay(session: Session, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Send the endpoint again every event of its account it matches since `since` (at or
    after), each subject's in its order."""
    query = (
        select(Event)
        .where(
            Event.account_id == endpoint.account_id,
            Event.created_at >= since,
            selects(endpoint),
        )
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
