"""An account's webhook endpoints: created with a signing secret shown once, changed, rotated,
deleted, and disabled when they cannot be reached."""

import base64
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from shared.webhooks import addresses, patterns
from shared.webhooks.fanout import PENDING
from shared.webhooks.schemas import EndpointCreate, EndpointUpdate

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


# Every status change of an account reads its endpoints and owes each a delivery, and each
# unreachable one is retried for the retry window (Stripe allows 16).
MAX_PER_ACCOUNT = 50


class EndpointNotFound(LookupError):
    pass


class TooManyEndpoints(Exception):
    pass


class PerCall(ValueError):
    """A change a per-call URL's endpoint does not take; `field` names what was asked."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str) -> str:
    """The URL, if webhooks may be sent there now; addresses.RefusedUrl otherwise (delivery
    checks it again, after its own DNS lookup)."""
    addresses.target(url)
    return url


def create(session: Session, account_id: str, body: EndpointCreate) -> WebhookEndpoint:
    """Raises addresses.RefusedUrl, patterns.InvalidPattern or TooManyEndpoints."""
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=check_url(body.url),
        events=patterns.check(body.events),
        description=body.description,
        enabled=body.enabled,
        secret=new_secret(),
    )
    # Counted one creation at a time per account (two at once would each see room for one),
    # without holding the account's row, which every change of its credits updates.
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"toingg:webhook-endpoints:{account_id}"},
    )
    count = session.scalar(
        select(sa.func.count()).where(
            WebhookEndpoint.account_id == account_id, ~WebhookEndpoint.per_call
        )
    )
    if (count or 0) >= MAX_PER_ACCOUNT:
        raise TooManyEndpoints(
            f"an account has at most {MAX_PER_ACCOUNT} webhook endpoints: delete one first"
        )
    session.add(endpoint)
    session.flush()
    return endpoint


def page(
    session: Session, account_id: str, *, per_call: bool, limit: int, offset: int
) -> tuple[list[WebhookEndpoint], int]:
    """The account's endpoints, oldest first: those it added, or (per_call) those its calls'
    and batches' `webhook` URLs made, of which it may have far more; and how many in all."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.account_id == account_id, WebhookEndpoint.per_call.is_(per_call)
    )
    items = list(
        session.scalars(
            query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            .limit(limit)
            .offset(offset)
        )
    )
    total = session.scalar(select(sa.func.count()).select_from(query.subquery())) or 0
    return items, total


def get(
    session: Session, account_id: str, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
    )
    # FOR NO KEY UPDATE: a change waits for another change, while the status changes' fan-out,
    # which reads the endpoints FOR KEY SHARE, waits for neither (a PATCH resolves its new URL
    # while it holds the row). A delete still waits for those fan-outs, as it must.
    locked = query.with_for_update(key_share=True)
    endpoint = session.scalar(locked if for_update else query)
    if endpoint is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint


def update(session: Session, endpoint: WebhookEndpoint, body: EndpointUpdate) -> WebhookEndpoint:
    """Raises addresses.RefusedUrl, patterns.InvalidPattern, or PerCall for the URL or events
    of a per-call URL's endpoint (what it is for follows from the calls that name it). Enabled
    again, an endpoint we disabled starts afresh: deliveries still pending are tried again at
    once."""
    if endpoint.per_call:
        for field, given in (("url", body.url), ("events", body.events)):
            if given is not None:
                raise PerCall(
                    field,
                    f"the {field} of a per-call URL's endpoint does not change: it gets every "
                    "event of the calls and batches placed with its URL",
                )
    if body.url is not None:
        endpoint.url = check_url(body.url)
    if body.events is not None:
        endpoint.events = patterns.check(body.events)
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is not None and body.enabled != endpoint.enabled:
        endpoint.enabled = body.enabled
        endpoint.disabled_reason = None
        if endpoint.enabled:
            _afresh(session, endpoint.id)
    session.flush()
    return endpoint


def _afresh(session: Session, endpoint_id: str) -> None:
    """The endpoint's pending deliveries, due now with a retry window of their own."""
    session.execute(
        sa.update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            # Written in, not bound: so the index of pending deliveries serves it.
            WebhookDelivery.state == sa.literal(PENDING, literal_execute=True),
        )
        .values(attempts=0, first_attempt_at=None, next_attempt_at=utcnow(), claim=None)
    )


def delete(session: Session, endpoint: WebhookEndpoint) -> None:
    """With its deliveries and their attempts. They go first, before the endpoint's row is
    deleted: the status changes' fan-out waits for that row's delete (it reads the endpoints
    FOR KEY SHARE), so deleted by its cascade, an endpoint's backlog of deliveries held up
    every status change of the account for as long as it took. What is owed to it meanwhile
    goes with the row."""
    delivery_ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    session.execute(
        sa.delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        sa.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id),
        execution_options={"synchronize_session": False},
    )
    session.delete(endpoint)
    session.flush()


def rotate_secret(session: Session, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; the one it replaces keeps signing beside it for
    WEBHOOK_SECRET_OVERLAP_SECONDS, so receivers can change theirs without missing an event.
    Rotated again within the overlap, the oldest stops at once. A per-call URL's endpoint is
    signed with its account's secret for such URLs: PerCall."""
    if endpoint.per_call:
        raise PerCall(
            "secret",
            "a per-call URL's endpoint is signed with the account's secret for per-call URLs: "
            "rotate that one (POST /api/webhook-secret/rotate)",
        )
    overlap = timedelta(seconds=get_settings().WEBHOOK_SECRET_OVERLAP_SECONDS)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + overlap
    endpoint.secret = new_secret()
    session.flush()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one until
    its overlap is over."""
    assert endpoint.secret is not None, "per-call URLs are signed with their account's secret"
    return secrets_at(
        endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at, now
    )


def secrets_at(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    if previous and previous_expires_at is not None and now < previous_expires_at:
        return [secret, previous]
    return [secret]


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:500]
