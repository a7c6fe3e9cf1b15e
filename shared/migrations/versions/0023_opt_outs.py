"""opt-outs: a campaign's opt-out digit, kept by each call with the moment it was pressed, and
the numbers each account called or texted from each of its numbers, found by index

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("opt_out_digit", sa.String(1), nullable=True))
    op.add_column("calls", sa.Column("opt_out_digit", sa.String(1), nullable=True))
    op.add_column("calls", sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_calls_to_from", "calls", ["to_number", "from_number"])
    op.create_index("ix_sms_messages_to_from", "sms_messages", ["to_number", "from_number"])


def downgrade() -> None:
    op.drop_index("ix_sms_messages_to_from", table_name="sms_messages")
    op.drop_index("ix_calls_to_from", table_name="calls")
    op.drop_column("calls", "opted_out_at")
    op.drop_column("calls", "opt_out_digit")
    op.drop_column("campaigns", "opt_out_digit")
