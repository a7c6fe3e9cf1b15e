from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class Dispute(Base):
    """A Stripe dispute of one of our payments, from the first event about it to its close.

    What it took back and gave back are ledger rows (references dispute:<id> and
    dispute:<id>:reinstated); this row knows whether it is still open, which is what blocks its
    account."""

    __tablename__ = "disputes"

    id: Mapped[IdPk]
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    checkout_session_id: Mapped[str] = mapped_column(ForeignKey("checkout_sessions.id"))
    # Stripe's status, as the latest event about it said.
    status: Mapped[str] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
