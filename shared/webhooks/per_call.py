"""The `webhook` URL of a call or batch (Bland's per-call field): that call's or batch's events
go there too, with everything an endpoint's deliveries have.

Each distinct URL an account names is an endpoint of the account's, marked per_call, made (or
enabled again, when we disabled it) by the first call or batch to name it, in that request's
transaction: its deliveries are owed, retried, kept in order, listed and resent as any
endpoint's. It subscribes to no event type: it gets every event of the calls and batches that
name it, a batch's calls naming their batch's URL, and nothing else (shared.webhooks.fanout).
An account has at most WEBHOOK_PER_CALL_URLS_MAX such URLs: a new one past that is refused.
Its deliveries are signed with the account's one secret for such URLs, made when first needed;
rotated, the old secret signs beside the new one for WEBHOOK_SECRET_OVERLAP_SECONDS.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.accounts.service import UnknownAccount
from shared.config import get_settings
from shared.models import Account, WebhookEndpoint, new_id, utcnow
from shared.webhooks import addresses, endpoints
from shared.webhooks.schemas import EndpointUpdate

DESCRIPTION = "the webhook of calls and batches placed with it"


class TooManyUrls(addresses.RefusedUrl):
    """A new URL, refused: the account has WEBHOOK_PER_CALL_URLS_MAX per-call URLs already."""


def bind(session: Session, account_id: str, url: str) -> str:
    """The URL, checked, with an enabled endpoint of the account's behind it for the call or
    batch about to name it; addresses.RefusedUrl if webhooks may not go there, TooManyUrls if
    it is new and the account has all the per-call URLs it may. An endpoint we disabled (410
    Gone, or failing for the retry window) is enabled again by a call that names its URL anew;
    one the customer disabled stays so."""
    endpoints.check_url(url)
    _ensure_secret(session, account_id)
    found = _find(session, account_id, url)
    if found is None:
        _create(session, account_id, url)
    # Calls naming an enabled URL at once do not wait for one another: the row is locked only
    # to enable it, and looked at again once held.
    elif not found.enabled and found.disabled_reason is not None:
        endpoint = endpoints.get(session, account_id, found.id, for_update=True)
        if not endpoint.enabled and endpoint.disabled_reason is not None:
            endpoints.update(session, endpoint, EndpointUpdate(enabled=True))
    return url


def _find(session: Session, account_id: str, url: str) -> Row[tuple[str, bool, str | None]] | None:
    return session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.enabled, WebhookEndpoint.disabled_reason).where(
            WebhookEndpoint.account_id == account_id,
            WebhookEndpoint.url == url,
            WebhookEndpoint.per_call,
        )
    ).one_or_none()


def _create(session: Session, account_id: str, url: str) -> None:
    """The URL's endpoint, unless the account is at its cap: each is kept until deleted, and
    each unreachable one is retried for the retry window and disabled with an event, so a URL
    that differs per call (`?call=123`) would otherwise add all of that per call, without
    bound."""
    # New URLs are counted one at a time per account (two at once would each see room for
    # one), and only new ones: a call naming a URL already known takes no lock.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"toingg:webhook-per-call-urls:{account_id}"},
    )
    if _find(session, account_id, url) is not None:
        return  # made by a call that held the lock before this one
    limit = get_settings().WEBHOOK_PER_CALL_URLS_MAX
    count = session.scalar(
        select(func.count()).where(
            WebhookEndpoint.account_id == account_id, WebhookEndpoint.per_call
        )
    )
    if (count or 0) >= limit:
        raise TooManyUrls(
            f"this account has {limit:,} per-call webhook URLs already, the most it may: name "
            "one of them (a URL that differs per call, e.g. by its query, is a new one each "
            "time), add an endpoint (POST /api/webhook-endpoints), or delete per-call ones "
            "no longer needed (GET /api/webhook-endpoints?perCall=true)"
        )
    now = utcnow()
    session.execute(
        insert(WebhookEndpoint)
        .values(
            id=new_id(),
            account_id=account_id,
            url=url,
            events=["*"],
            description=DESCRIPTION,
            enabled=True,
            per_call=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[WebhookEndpoint.account_id, WebhookEndpoint.url],
            index_where=WebhookEndpoint.per_call,
        )
    )


def _ensure_secret(session: Session, account_id: str) -> None:
    # Written only while there is none, so two first calls at once keep one secret, and the
    # account's row is not locked by every call that names a URL.
    session.execute(
        update(Account)
        .where(Account.id == account_id, Account.webhook_secret.is_(None))
        .values(webhook_secret=endpoints.new_secret())
    )


@dataclass(frozen=True)
class Rotated:
    secret: str
    previous_expires_at: datetime | None


def rotate_secret(session: Session, account_id: str) -> Rotated:
    """A new secret for the account's per-call URLs, shown to the caller this once; the one it
    replaces (if any) signs beside it until the overlap ends. Rotated again within the overlap,
    the oldest stops at once. Raises UnknownAccount."""
    account = session.get(Account, account_id, with_for_update=True, populate_existing=True)
    if account is None:
        raise UnknownAccount(account_id)
    if account.webhook_secret is not None:
        overlap = timedelta(seconds=get_settings().WEBHOOK_SECRET_OVERLAP_SECONDS)
        account.webhook_previous_secret = account.webhook_secret
        account.webhook_previous_secret_expires_at = utcnow() + overlap
    account.webhook_secret = endpoints.new_secret()
    session.flush()
    return Rotated(account.webhook_secret, account.webhook_previous_secret_expires_at)
