from datetime import datetime
from typing import Any

import uuid6
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import UTCDateTime, utcnow


def new_event_id() -> str:
    """A UUIDv7: its first 48 bits are the time in milliseconds, so ids sort as events were
    made, and a page of them is read by the primary key's order."""
    return str(uuid6.uuid7())


class Event(Base):
    """One change of a call, SMS, batch or account's credits, written in the transaction that
    made the change (the outbox): it exists exactly when the change committed."""

    __tablename__ = "events"
    __table_args__ = (
        # One subject's events are numbered 1, 2, 3 ...: two at once cannot take one number.
        UniqueConstraint("subject_type", "subject_id", "sequence"),
        # An account's events, newest first, as GET /api/events pages them.
        Index("ix_events_account_id", "account_id", text("id DESC")),
        # An account's refusals of a number (each its own subject), newest first.
        Index(
            "ix_events_refusal_number",
            "account_id",
            text("(data ->> 'number')"),
            text("id DESC"),
            postgresql_where=text("subject_type = 'refusal'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_event_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    # call.completed, sms.delivered, batch.paused, credits.changed ... (shared.events.types).
    type: Mapped[str] = mapped_column(String(64))
    # call, sms, batch, credits, ... (shared.events.types); a credits subject's id is its
    # account's.
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The subject as its GET showed it right after the change.
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
