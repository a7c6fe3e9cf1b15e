from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import UTCDateTime


class SmsTurn(Base):
    """When the SMS dispatcher last claimed an account's messages. It serves the least recently
    served first, so every account with messages owed has its turn within a few windows, however
    many accounts there are and however long one account's backlog."""

    __tablename__ = "sms_turns"

    account_id: Mapped[str] = mapped_column(String(36), ForeignKey("accounts.id"), primary_key=True)
    served_at: Mapped[datetime] = mapped_column(UTCDateTime)
