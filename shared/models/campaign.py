from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    script: Mapped[str] = mapped_column(Text)
    caller_id: Mapped[str] = mapped_column(String(32))
    max_call_minutes: Mapped[int] = mapped_column(default=5)
    max_concurrent_calls: Mapped[int | None]
    # {"start": "09:00", "end": "20:00", "days": ["mon", ...]}; None: CALLING_HOURS.
    calling_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    default_timezone: Mapped[str | None] = mapped_column(String(64))
    # The key that puts the callee on the account's do-not-contact list ("0"-"9", "*", "#").
    opt_out_digit: Mapped[str | None] = mapped_column(String(1))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
