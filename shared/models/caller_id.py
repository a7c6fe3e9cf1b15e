from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk


class CallerId(Base):
    """A number an account may call and text from. A number is one account's: on the
    platform's Twilio account any number could be sent as From, another customer's too."""

    __tablename__ = "caller_ids"

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164
    created_at: Mapped[CreatedAt]
