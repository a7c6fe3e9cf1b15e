from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk


class CreditEntry(Base):
    """One change of an account's credits. Append-only: the balance is the sum of these rows,
    and `reference` (unique) makes every grant, charge and settlement happen once."""

    __tablename__ = "credit_ledger"
    __table_args__ = (Index("ix_credit_ledger_account_created", "account_id", "created_at"),)

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    delta: Mapped[int]
    balance_after: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))
    # What the change concerns: call, sms, checkout_session, charge, dispute, or manual.
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(255))
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[CreatedAt]
