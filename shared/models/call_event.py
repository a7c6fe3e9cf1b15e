from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime


class CallEvent(Base):
    """One step of a call's timeline. A status callback delivered twice has the same
    (call, source, sequence) and is stored once."""

    __tablename__ = "call_events"
    __table_args__ = (
        UniqueConstraint("call_id", "source", "sequence_number"),
        # The rows the retention purge has yet to reach: few, however long the table.
        Index("ix_call_events_unpurged", "created_at", postgresql_where=text("params IS NOT NULL")),
    )

    id: Mapped[IdPk]
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    # "twilio" for status callbacks (sequence_number is Twilio's SequenceNumber), "toingg" for
    # the product's own steps (sequence_number counts them).
    source: Mapped[str] = mapped_column(String(16))
    sequence_number: Mapped[int]
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Twilio's raw parameters; NULL once older than RETENTION_DAYS (the row, and with it the
    # SequenceNumber that deduplicates callbacks, stays).
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=dict)
    created_at: Mapped[CreatedAt]
