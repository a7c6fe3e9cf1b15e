"""Disputes, and the block they put on their account.

The first news of an open dispute blocks its account: its new calls and SMS are refused and its
queued calls and SMS are not claimed, until the dispute is closed (won, lost, an inquiry closed)
or an operator lifts the block (`toingg accounts unblock`). What a dispute takes back and gives
back is in shared.billing.events.
"""

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from shared.models import Account, CheckoutSession, Dispute, utcnow

# Stripe's statuses of a dispute that is over.
FINAL = frozenset({"won", "lost", "warning_closed", "prevented"})


class AccountBlocked(Exception):
    def __init__(self, dispute_id: str | None) -> None:
        self.dispute_id = dispute_id
        what = f"dispute {dispute_id}" if dispute_id else "a dispute"
        super().__init__(
            f"account blocked by {what} of one of its payments: no new calls or SMS until the "
            "dispute is closed or support lifts the block"
        )


def _locked_account(session: Session, account_id: str) -> Account | None:
    # Locked until commit: disputes of the account's payments opening and closing at once
    # take turns, so the last one to close sees that no other is open. FOR NO KEY UPDATE lets
    # the foreign-key checks of rows naming the account through (see calls.service).
    return session.get(
        Account, account_id, with_for_update={"key_share": True}, populate_existing=True
    )


def track(
    session: Session,
    checkout: CheckoutSession,
    stripe_dispute_id: str,
    status: str,
    *,
    closed: bool,
) -> None:
    """Record what an event says of a dispute: opened (the account is blocked), or closed (the
    block is lifted once no other dispute of the account is open)."""
    account = _locked_account(session, checkout.account_id)
    assert account is not None
    dispute = session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute_id))
    if dispute is None:
        dispute = Dispute(
            stripe_dispute_id=stripe_dispute_id,
            account_id=checkout.account_id,
            checkout_session_id=checkout.id,
            status=status,
        )
        session.add(dispute)
        # Only the first news blocks: a later event about the same dispute must not undo an
        # operator's unblock.
        if not closed:
            account.disputed = True
    dispute.status = status
    if closed and dispute.closed_at is None:
        dispute.closed_at = utcnow()
        session.flush()
        if open_dispute(session, account.id) is None:
            account.disputed = False
    session.flush()


def blocked_accounts() -> Select[tuple[str]]:
    """The blocked accounts' ids, for the claims of queued calls and SMS: a message or call
    accepted before the block (or while it committed) waits too, until the block is lifted."""
    return select(Account.id).where(Account.disputed)


def open_dispute(session: Session, account_id: str) -> str | None:
    """The account's oldest open dispute (Stripe's id), if any."""
    return session.scalar(
        select(Dispute.stripe_dispute_id)
        .where(Dispute.account_id == account_id, Dispute.closed_at.is_(None))
        .order_by(Dispute.created_at)
        .limit(1)
    )


def is_blocked(session: Session, account_id: str) -> bool:
    """Whether the account is blocked, as the last commit left it."""
    return bool(session.scalar(select(Account.disputed).where(Account.id == account_id)))


def ensure_not_blocked(session: Session, account: Account) -> None:
    """Raises AccountBlocked for a blocked account: it places no new calls or SMS."""
    if account.disputed:
        raise AccountBlocked(open_dispute(session, account.id))


class UnknownAccount(LookupError):
    pass


def unblock(session: Session, account_id: str) -> tuple[bool, str | None]:
    """Lift an account's block (an operator's decision; its open disputes stay open at Stripe).
    Returns whether it was blocked, and its oldest open dispute."""
    account = _locked_account(session, account_id)
    if account is None:
        raise UnknownAccount(account_id)
    was_blocked = account.disputed
    account.disputed = False
    session.flush()
    return was_blocked, open_dispute(session, account_id)
