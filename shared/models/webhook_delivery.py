from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime, utcnow


class WebhookDelivery(Base):
    """One event owed to one endpoint, from the transaction that appended the event until it is
    delivered or given up (shared.webhooks.delivery)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # What the delivery tick looks for: pending and due.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        # Whether an earlier event of the same subject is still owed to the endpoint.
        Index(
            "ix_webhook_deliveries_subject",
            "endpoint_id",
            "subject_type",
            "subject_id",
            "sequence",
            postgresql_where=text("state = 'pending'"),
        ),
        # The deliveries in flight (a handful per endpoint, whatever the backlog), counted
        # against an endpoint's share of the senders.
        Index(
            "ix_webhook_deliveries_in_flight",
            "endpoint_id",
            postgresql_where=text("state = 'pending' AND claim IS NOT NULL"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        # What the retention purge deletes: deliveries that are over, oldest first.
        Index(
            "ix_webhook_deliveries_over",
            "updated_at",
            postgresql_where=text("state <> 'pending'"),
        ),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[IdPk]
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    # The event's, kept here so the order rule and the listing need no join.
    event_type: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int]
    # pending, delivered, or failed (given up).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # Attempts since it was owed (or sent again), and when the first of them was made: the
    # retry window counts from there.
    attempts: Mapped[int] = mapped_column(default=0)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it is due; while an attempt is in flight, when that attempt's claim runs out (a
    # worker lost mid-attempt leaves it due again then). None once delivered or given up.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    # The attempt in flight (its WebhookAttempt id); None between attempts. An outcome that
    # comes back for another attempt than this one changes the state no more.
    claim: Mapped[str | None] = mapped_column(String(36))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    attempt_rows: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.attempted_at", lazy="raise", passive_deletes=True
    )


class WebhookAttempt(Base):
    """One request of a delivery: when, what came back, how long it took, what went wrong.
    Written when the attempt starts; an attempt with no outcome lost its worker."""

    __tablename__ = "webhook_attempts"

    id: Mapped[IdPk]
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
