"""calls placed to a number, indexed for the caps on calls to one number a day

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_calls_placed_to",
        "calls",
        ["account_id", "to_number", "dialed_at"],
        postgresql_where=sa.text("dialed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_placed_to", table_name="calls")
