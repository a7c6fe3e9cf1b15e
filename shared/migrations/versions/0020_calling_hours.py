"""calls wait for their hours: when each may be placed, from and until when, in which zone,
and why it waits; a campaign's calling hours and default time zone

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("calling_hours", postgresql.JSONB(), nullable=True))
    op.add_column("campaigns", sa.Column("default_timezone", sa.String(64), nullable=True))
    op.add_column("calls", sa.Column("timezone", sa.String(64), nullable=True))
    op.add_column("calls", sa.Column("start_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("calls", sa.Column("not_after", sa.DateTime(timezone=True), nullable=True))
    op.add_column("calls", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column("calls", sa.Column("hold_reason", sa.Text(), nullable=True))
    op.add_column("calls", sa.Column("hold_rule", sa.String(64), nullable=True))
    # The dispatcher's look for calls whose hours opened, and for calls past their notAfter:
    # both only over the few rows that wait, whatever the table's size.
    op.create_index(
        "ix_calls_scheduled_not_before",
        "calls",
        ["not_before"],
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_calls_not_after_open",
        "calls",
        ["not_after"],
        postgresql_where=sa.text(
            "not_after IS NOT NULL AND status IN ('queued', 'scheduled', 'insufficient-credits')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_not_after_open", table_name="calls")
    op.drop_index("ix_calls_scheduled_not_before", table_name="calls")
    for column in ("hold_rule", "hold_reason", "not_before", "not_after", "start_at", "timezone"):
        op.drop_column("calls", column)
    op.drop_column("campaigns", "default_timezone")
    op.drop_column("campaigns", "calling_hours")
