"""the deliveries in flight, counted per endpoint by the claim, have an index of their own

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_webhook_deliveries_in_flight",
            "webhook_deliveries",
            ["endpoint_id"],
            postgresql_where=sa.text("state = 'pending' AND claim IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_in_flight", table_name="webhook_deliveries")
