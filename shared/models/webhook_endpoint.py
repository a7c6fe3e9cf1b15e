from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class WebhookEndpoint(Base):
    """A URL of the account's where its events are delivered (shared.webhooks)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    # Event types and wildcards ("call.completed", "call.*", "*"): an event is delivered here
    # when one of them matches it (shared.webhooks.patterns).
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    # Why it was disabled by us (every attempt failed for the retry window, or 410 Gone);
    # None when enabled, or disabled by the customer.
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    # Kept in the clear: an HMAC is signed with the secret itself. The previous one keeps
    # signing beside it until previous_secret_expires_at (a rotation's overlap).
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a delivery to it last went through, to within a second (written at most once a
    # second, so a stream of deliveries does not queue on this row); None: never. A delivery
    # given up with nothing delivered since its first attempt disables the endpoint.
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
