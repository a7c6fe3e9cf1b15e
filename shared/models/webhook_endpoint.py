from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class WebhookEndpoint(Base):
    """A URL of the account's where its events are delivered (shared.webhooks)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint("per_call OR secret IS NOT NULL", name="ck_webhook_endpoints_secret"),
        # A per-call URL's endpoint, found by the URL a call or batch names.
        Index(
            "ux_webhook_endpoints_per_call_url",
            "account_id",
            "url",
            unique=True,
            postgresql_where=text("per_call"),
        ),
    )

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
    # Made for the `webhook` URL of calls and batches (shared.webhooks.per_call): it gets
    # their events alone, whatever `events` says, signed with the account's webhook_secret.
    per_call: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Kept in the clear: an HMAC is signed with the secret itself. The previous one keeps
    # signing beside it until previous_secret_expires_at (a rotation's overlap). None for a
    # per-call URL's endpoint, signed with its account's.
    secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a delivery to it last went through, to within a second (written at most once a
    # second, so a stream of deliveries does not queue on this row); None: never. A delivery
    # given up with nothing delivered since its first attempt disables the endpoint.
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
