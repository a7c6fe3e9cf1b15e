"""sms requested_at: when a message's create request went out, so one request at a time goes
to a pair of numbers and reconcile counts only requests that went out

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sms_messages", sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("sms_messages", "requested_at")
