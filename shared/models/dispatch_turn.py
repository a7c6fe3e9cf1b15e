from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import IdPk, UTCDateTime


class DispatchTurn(Base):
    """When the dispatcher last claimed calls of a group: an account's batch, or its single
    calls (no batch). It serves the least recently served first, so every account with calls
    owed has its turn within a few windows, however many accounts there are."""

    __tablename__ = "dispatch_turns"
    # One row per group: an account's single calls (batch_id NULL) count as one group.
    __table_args__ = (
        UniqueConstraint("account_id", "batch_id", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    # No foreign key: checking one would share-lock the batch's row in the claim's transaction,
    # which a pause or cancel holds while it waits for the calls the claim holds.
    batch_id: Mapped[str | None] = mapped_column(String(36))
    served_at: Mapped[datetime] = mapped_column(UTCDateTime)
