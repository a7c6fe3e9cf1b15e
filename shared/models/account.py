from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UTCDateTime


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(200))
    # The sum of the account's credit_ledger rows, kept here so a reservation is one
    # conditional UPDATE.
    credits: Mapped[int] = mapped_column(default=0)
    disputed: Mapped[bool] = mapped_column(default=False)
    # Overrides of the settings' defaults (None: the default).
    api_rate_per_second: Mapped[float | None]
    api_burst: Mapped[int | None]
    max_concurrent_calls: Mapped[int | None]
    # What signs the deliveries to the `webhook` URLs of its calls and batches (one for all of
    # them; None until first needed), and the one before it until its overlap ends.
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    webhook_previous_secret: Mapped[str | None] = mapped_column(String(100))
    webhook_previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
