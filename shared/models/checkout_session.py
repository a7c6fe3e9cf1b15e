from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class CheckoutSession(Base):
    """A purchase of credits through Stripe Checkout, from creation to payment."""

    __tablename__ = "checkout_sessions"

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    credits: Mapped[int]
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(8))
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # open, paid, failed
    status: Mapped[str] = mapped_column(String(16), default="open")
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
