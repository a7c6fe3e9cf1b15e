from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime


class CallEvent(Base):
    """One step of a call's timeline. A status callback delivered twice has the same
    (call, source, sequence) and is stored once."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_id", "source", "sequence_number"),)

    id: Mapped[IdPk]
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    # "twilio" for status callbacks (sequence_number is Twilio's SequenceNumber), "toingg" for
    # the product's own steps (sequence_number counts them).
    source: Mapped[str] = mapped_column(String(16))
    sequence_number: Mapped[int]
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[CreatedAt]
