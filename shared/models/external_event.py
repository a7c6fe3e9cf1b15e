from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime, utcnow


class ExternalEvent(Base):
    """An event from outside (a Stripe webhook), stored once however often it is delivered,
    and marked handled once applied."""

    __tablename__ = "external_events"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index(
            "ix_external_events_due",
            "next_attempt_at",
            postgresql_where=text("handled_at IS NULL AND dead_at IS NULL"),
        ),
        Index("ix_external_events_dead", "dead_at", postgresql_where=text("dead_at IS NOT NULL")),
        Index(
            "ix_external_events_unpurged",
            "created_at",
            postgresql_where=text("payload IS NOT NULL"),
        ),
    )

    id: Mapped[IdPk]
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    # NULL once applied (or dead) and older than RETENTION_DAYS; the row stays, so its id still
    # deduplicates a late delivery of the same event.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Why the event is not applied yet (e.g. a refund whose payment is not known yet), or why
    # it was given up.
    pending_reason: Mapped[str | None] = mapped_column(String(500))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Tries so far; when the retry scan tries it next; dead: given up after the last try.
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
