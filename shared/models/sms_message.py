from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class SmsMessage(Base):
    __tablename__ = "sms_messages"
    __table_args__ = (
        Index("ix_sms_status_handed", "status", "handed_at"),
        # Who texted this number from that one (see ix_calls_to_from).
        Index("ix_sms_messages_to_from", "to_number", "from_number"),
        Index("ix_sms_messages_unpurged", "created_at", postgresql_where=text("body IS NOT NULL")),
    )

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    to_number: Mapped[str] = mapped_column(String(32))
    from_number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    # NULL once Twilio has the message (or it ended) and it is older than RETENTION_DAYS.
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default="queued")
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    attempt: Mapped[str | None] = mapped_column(String(36))
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the fence let its create request go to Twilio; None until then, and once handed back.
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    segments: Mapped[int | None]
    credits_charged: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
