"""Stripe events: attempts, backoff and dead events; disputes, which block their account

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "external_events",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    # Events not applied yet are due at once.
    op.add_column(
        "external_events",
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.add_column("external_events", sa.Column("dead_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_external_events_due",
        "external_events",
        ["next_attempt_at"],
        postgresql_where=sa.text("handled_at IS NULL AND dead_at IS NULL"),
    )
    op.create_index(
        "ix_external_events_dead",
        "external_events",
        ["dead_at"],
        postgresql_where=sa.text("dead_at IS NOT NULL"),
    )

    op.create_table(
        "disputes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stripe_dispute_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["checkout_session_id"], ["checkout_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_dispute_id"),
    )
    op.create_index("ix_disputes_account_id", "disputes", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_disputes_account_id", table_name="disputes")
    op.drop_table("disputes")
    op.drop_index("ix_external_events_dead", table_name="external_events")
    op.drop_index("ix_external_events_due", table_name="external_events")
    op.drop_column("external_events", "dead_at")
    op.drop_column("external_events", "next_attempt_at")
    op.drop_column("external_events", "attempts")
