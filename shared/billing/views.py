"""Credits as GET /api/credits shows them: what the API answers, and what credits.changed
carries (the balance after the change, and the ledger rows the change wrote)."""

from collections.abc import Sequence

from sqlalchemy.orm import Session

from shared import events
from shared.billing.schemas import CreditsChanged, LedgerRow
from shared.events import types
from shared.models import CreditEntry


def ledger_row(entry: CreditEntry) -> LedgerRow:
    return LedgerRow(
        id=entry.id,
        delta=entry.delta,
        balanceAfter=entry.balance_after,
        reason=entry.reason,
        subjectType=entry.subject_type,
        subjectId=entry.subject_id,
        note=entry.note,
        createdAt=entry.created_at,
    )


def changed(
    session: Session, account_id: str, balance: int, disputed: bool, entries: Sequence[CreditEntry]
) -> None:
    """The account's credits.changed event, in the transaction of the change."""
    events.append(
        session,
        account_id,
        types.CREDITS_CHANGED,
        types.CREDITS,
        account_id,
        CreditsChanged(
            balance=balance, disputed=disputed, entries=[ledger_row(e) for e in entries]
        ),
    )
