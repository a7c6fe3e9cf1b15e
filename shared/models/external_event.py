from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime


class ExternalEvent(Base):
    """An event from outside (a Stripe webhook), stored once however often it is delivered,
    and marked handled once applied."""

    __tablename__ = "external_events"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[IdPk]
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Why the event is not applied yet (e.g. a refund whose payment is not known yet).
    pending_reason: Mapped[str | None] = mapped_column(String(500))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[CreatedAt]
