"""webhook endpoints: when one was last delivered to, in place of when it began failing

An attempt that failed, recorded after another of the same moment was delivered, set the
endpoint failing from before that delivery; the last delivery is what the disabling rule needs.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.drop_column("webhook_endpoints", "failing_since")


def downgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.drop_column("webhook_endpoints", "last_delivered_at")
