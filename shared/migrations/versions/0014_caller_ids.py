"""caller IDs: the numbers an account may call and text from

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No backfill from the campaigns' caller IDs: which account holds which number is for an
    # operator to say, not for whatever a campaign was saved with.
    op.create_table(
        "caller_ids",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index(op.f("ix_caller_ids_account_id"), "caller_ids", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_caller_ids_account_id"), table_name="caller_ids")
    op.drop_table("caller_ids")
