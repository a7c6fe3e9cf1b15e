"""The credit ledger: every change of a balance is one append-only row with a unique reference.

A change is one conditional UPDATE of the balance plus the row, inside a savepoint: a debit that
the balance does not cover changes nothing, and a reference seen before (a repeated task, a
webhook delivered twice) rolls back to the savepoint and changes nothing either.
"""

from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.billing import views
from shared.models import Account, CreditEntry, new_id, utcnow


class InsufficientCredits(Exception):
    def __init__(self, balance: int, price: int) -> None:
        super().__init__(f"insufficient credits: balance {balance}, price {price}")
        self.balance = balance
        self.price = price


@dataclass(frozen=True)
class Change:
    account_id: str
    delta: int
    reason: str
    subject_type: str
    subject_id: str
    reference: str
    note: str = ""


def apply(session: Session, change: Change, *, must_cover: bool = False) -> CreditEntry | None:
    """Apply a change once. Returns its row, or None when the reference was applied before.

    must_cover: a debit that would take the balance below zero raises InsufficientCredits.
    """
    statement = update(Account).where(Account.id == change.account_id)
    if must_cover and change.delta < 0:
        statement = statement.where(Account.credits >= -change.delta)
    statement = (
        statement.values(credits=Account.credits + change.delta)
        .returning(Account.credits, Account.disputed)
        .execution_options(synchronize_session=False)
    )
    try:
        with session.begin_nested():
            row = session.execute(statement).one_or_none()
            if row is None:
                raise InsufficientCredits(balance_of(session, change.account_id), -change.delta)
            balance, disputed = row
            entry = CreditEntry(
                account_id=change.account_id,
                delta=change.delta,
                balance_after=balance,
                reason=change.reason,
                subject_type=change.subject_type,
                subject_id=change.subject_id,
                reference=change.reference,
                note=change.note,
            )
            session.add(entry)
            session.flush()
            views.changed(session, change.account_id, balance, disputed, [entry])
    except IntegrityError:
        return None
    # The balance moved under the ORM's feet: reload it the next time it is read.
    account = session.get(Account, change.account_id)
    if account is not None:
        session.expire(account, ["credits"])
    return entry


def apply_together(session: Session, account_id: str, changes: list[Change]) -> None:
    """Changes of one account at once (a window's call reservations, a second's settlements):
    one balance update and one insert, so a busy account's row is locked once, not per call.
    Debits must be covered in total, or nothing changes (InsufficientCredits).

    Each reference must be new: unlike `apply`, a repeat is an error, not a no-op.
    """
    total = sum(change.delta for change in changes)
    assert all(change.account_id == account_id for change in changes)
    if not changes:
        return
    with session.begin_nested():
        row = session.execute(
            update(Account)
            .where(Account.id == account_id, Account.credits >= -total)
            .values(credits=Account.credits + total)
            .returning(Account.credits, Account.disputed)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if row is None:
            raise InsufficientCredits(balance_of(session, account_id), -total)
        balance, disputed = row
        running = balance - total
        now = utcnow()
        rows = []
        for change in changes:
            running += change.delta
            rows.append(
                {
                    "id": new_id(),
                    "created_at": now,
                    "account_id": account_id,
                    "delta": change.delta,
                    "balance_after": running,
                    "reason": change.reason,
                    "subject_type": change.subject_type,
                    "subject_id": change.subject_id,
                    "reference": change.reference,
                    "note": change.note,
                }
            )
        session.execute(insert(CreditEntry), rows)
        views.changed(session, account_id, balance, disputed, [CreditEntry(**r) for r in rows])
    account = session.get(Account, account_id)
    if account is not None:
        session.expire(account, ["credits"])


def balance_of(session: Session, account_id: str) -> int:
    return session.scalar(select(Account.credits).where(Account.id == account_id)) or 0


def applied(session: Session, reference: str) -> bool:
    return (
        session.scalar(select(CreditEntry.id).where(CreditEntry.reference == reference)) is not None
    )


def delta_of(session: Session, reference: str) -> int:
    """The change a reference made, 0 if none was made."""
    return session.scalar(select(CreditEntry.delta).where(CreditEntry.reference == reference)) or 0


def total_for_subject(session: Session, subject_type: str, subject_id: str, reason: str) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
                CreditEntry.subject_type == subject_type,
                CreditEntry.subject_id == subject_id,
                CreditEntry.reason == reason,
            )
        )
        or 0
    )


def ledger_sum(session: Session, account_id: str) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
                CreditEntry.account_id == account_id
            )
        )
        or 0
    )


def page(
    session: Session, account_id: str, limit: int, offset: int
) -> tuple[list[CreditEntry], int]:
    query = select(CreditEntry).where(CreditEntry.account_id == account_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(CreditEntry.created_at.desc(), CreditEntry.id).limit(limit).offset(offset)
    )
    return list(rows), total
