from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk


class Script(Base):
    """A campaign script as calls were accepted with it: never changed once written. Calls
    refer to it, so a 100,000-number batch stores its text once, and an edit of the campaign
    writes a new one. The same text is stored once per account (its digest)."""

    __tablename__ = "scripts"
    __table_args__ = (UniqueConstraint("account_id", "digest"),)

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the text, in hex
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
