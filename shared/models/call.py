from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.models._columns import CreatedAt, IdPk, UpdatedAt, UTCDateTime


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_account_status", "account_id", "status"),
        Index("ix_calls_batch_status", "batch_id", "status"),
        Index("ix_calls_status_handed", "status", "handed_at"),
        # Who called this number from that one: a text of STOP to it opts out of them all.
        Index("ix_calls_to_from", "to_number", "from_number"),
        # Live calls and ended calls not yet settled: few, whatever the table's size.
        Index(
            "ix_calls_holding_credits",
            "account_id",
            postgresql_where=text("credits_reserved > 0"),
        ),
        # Calls waiting for their hours, and calls that may pass their notAfter unplaced: few.
        Index(
            "ix_calls_scheduled_not_before",
            "not_before",
            postgresql_where=text("status = 'scheduled'"),
        ),
        # The calls placed to a number, for the caps on calls to one number: an entry once a call
        # goes to Twilio, none for the rows a batch inserts.
        Index(
            "ix_calls_placed_to",
            "account_id",
            "to_number",
            "dialed_at",
            postgresql_where=text("dialed_at IS NOT NULL"),
        ),
        Index(
            "ix_calls_not_after_open",
            "not_after",
            postgresql_where=text(
                "not_after IS NOT NULL"
                " AND status IN ('queued', 'scheduled', 'insufficient-credits')"
            ),
        ),
    )

    id: Mapped[IdPk]
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"))
    to_number: Mapped[str] = mapped_column(String(32))
    from_number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    # What the call was accepted with, as from_number: a campaign edit changes only later calls.
    script_id: Mapped[str] = mapped_column(ForeignKey("scripts.id"))
    max_call_minutes: Mapped[int]
    opt_out_digit: Mapped[str | None] = mapped_column(String(1))
    # When the callee pressed the opt-out digit.
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(32), default="queued")
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A new value each time a worker claims the call, so a stale worker cannot overwrite a
    # newer attempt's result.
    attempt: Mapped[str | None] = mapped_column(String(36))
    # When the call was last handed to a worker (a task sent) while queued.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Claimed (a worker took the call) and dialed (its create request went to Twilio, after
    # the slot in the dial rate): the carrier counts its rate by the second.
    dial_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dialed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None]
    last_sequence: Mapped[int] = mapped_column(default=-1)
    hangup_requested: Mapped[bool] = mapped_column(default=False)
    # The hang-up's own record, so the database, not a broker message, knows one is owed: when
    # it was last handed to a worker (asked for, or sent again by the sweeper), when Twilio
    # confirmed the call over after it, and how many hang-up requests went to Twilio (two at
    # once are harmless, and show here).
    hangup_handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangup_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangups_sent: Mapped[int] = mapped_column(default=0)
    credits_reserved: Mapped[int] = mapped_column(default=0)
    credits_charged: Mapped[int | None]
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    # When it may be placed: its recipient's zone when given (else the number's), its startAt
    # and notAfter as accepted, and while scheduled, the first moment its rules allow and why
    # it waits (the rule's key, see shared/calling_hours).
    timezone: Mapped[str | None] = mapped_column(String(64))
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_rule: Mapped[str | None] = mapped_column(String(64))
    # Where its events go too (a single call's own, or its batch's): shared.webhooks.per_call.
    webhook: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
