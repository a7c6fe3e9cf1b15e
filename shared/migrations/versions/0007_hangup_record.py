"""a hang-up's own record: when it was handed to a worker, carried out, and how often sent

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hangup_handed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("hangup_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("hangups_sent", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("hangups_sent")
        batch_op.drop_column("hangup_sent_at")
        batch_op.drop_column("hangup_handed_at")
