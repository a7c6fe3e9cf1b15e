"""do-not-contact lists: an account's numbers never to call or text, the operators' list for
every account, and every add and removal kept

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dnc_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_dnc_entries_number_account",
        "dnc_entries",
        ["number", "account_id"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_index(
        "ix_dnc_entries_account_changed", "dnc_entries", ["account_id", "changed_at", "id"]
    )
    op.create_table(
        "dnc_changes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_dnc_changes_entry_id"), "dnc_changes", ["entry_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dnc_changes_entry_id"), table_name="dnc_changes")
    op.drop_table("dnc_changes")
    op.drop_index("ix_dnc_entries_account_changed", table_name="dnc_entries")
    op.drop_index("uq_dnc_entries_number_account", table_name="dnc_entries")
    op.drop_table("dnc_entries")
