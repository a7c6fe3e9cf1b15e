"""calls still holding a reservation, for the settler

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    holding = sa.text("credits_reserved > 0")
    op.create_index(
        "ix_calls_holding_credits",
        "calls",
        ["account_id"],
        postgresql_where=holding,
    )


def downgrade() -> None:
    op.drop_index("ix_calls_holding_credits", table_name="calls")
