from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime, utcnow


class DncEntry(Base):
    """A number on a do-not-contact list: an account's, or the operators' list that applies to
    every account (account_id NULL). The row outlives its removal (`listed` false), so the
    number keeps one identity, and one history, however often it is added and removed."""

    __tablename__ = "dnc_entries"
    __table_args__ = (
        # One row per list and number. NULLS NOT DISTINCT: the global list is one list too.
        # Its number first: the dial path looks a number up on the account's list and the
        # global one at once.
        Index(
            "uq_dnc_entries_number_account",
            "number",
            "account_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_dnc_entries_account_changed", "account_id", "changed_at", "id"),
    )

    id: Mapped[IdPk]
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    number: Mapped[str] = mapped_column(String(32))  # E.164
    listed: Mapped[bool]
    # Of the last change: why, from where (shared.dnc.sources), and when.
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    created_at: Mapped[CreatedAt]


class DncChange(Base):
    """One add or removal of a list's number, kept for good: the audit trail of the list."""

    __tablename__ = "dnc_changes"

    id: Mapped[IdPk]
    # No foreign key: an entry is never deleted, and its check per row doubled the time of an
    # import's 100,000 history rows.
    entry_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(16))  # added or removed
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[CreatedAt]
