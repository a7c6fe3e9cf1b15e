"""webhook deliveries that are over are deleted after RETENTION_DAYS

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The purge's deliveries, oldest first, found without reading the pending ones; built
    # without blocking the writes of a table that may already be large.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_webhook_deliveries_over",
            "webhook_deliveries",
            ["updated_at"],
            postgresql_where=sa.text("state <> 'pending'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_over", table_name="webhook_deliveries")
