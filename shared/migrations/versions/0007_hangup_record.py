"""a hang-up's own record: when it was handed to a worker, carried out, and how often sent

Revision ID: 0007
Revises: 0012
Create Date: 2026-12-01 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("hangup_handed_at", sa.DateTime(timezone=True)))
    op.add_column("calls", sa.Column("hangup_sent_at", sa.DateTime(timezone=True)))
    op.add_column(
        "calls", sa.Column("hangups_sent", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("calls", "hangups_sent")
    op.drop_column("calls", "hangup_sent_at")
    op.drop_column("calls", "hangup_handed_at")
