from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime


class IdempotencyKey(Base):
    """A client's Idempotency-Key: the request it was first used for and, once that request's
    work has committed, the answer it got (stored in the same transaction as the work)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    key: Mapped[str] = mapped_column(String(255))
    # The request's fingerprint: a repeat must match it.
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    body_hash: Mapped[str] = mapped_column(String(64))
    # in-progress, done
    status: Mapped[str] = mapped_column(String(16), default="in-progress")
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt] = mapped_column(index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
