"""per-call webhooks: the `webhook` URL of calls and batches, and the account's secret for them

Each distinct URL an account names is an endpoint of its own (per_call), signed with the
account's secret for such URLs rather than one of its own.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("webhook", sa.Text(), nullable=True))
    op.add_column("batches", sa.Column("webhook", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("webhook_secret", sa.String(length=100), nullable=True))
    op.add_column(
        "accounts", sa.Column("webhook_previous_secret", sa.String(length=100), nullable=True)
    )
    op.add_column(
        "accounts",
        sa.Column("webhook_previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("per_call", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.alter_column("webhook_endpoints", "secret", existing_type=sa.String(100), nullable=True)
    op.create_check_constraint(
        "ck_webhook_endpoints_secret", "webhook_endpoints", "per_call OR secret IS NOT NULL"
    )
    op.create_index(
        "ux_webhook_endpoints_per_call_url",
        "webhook_endpoints",
        ["account_id", "url"],
        unique=True,
        postgresql_where=sa.text("per_call"),
    )


def downgrade() -> None:
    op.drop_index("ux_webhook_endpoints_per_call_url", table_name="webhook_endpoints")
    op.execute("DELETE FROM webhook_endpoints WHERE per_call")
    op.drop_constraint("ck_webhook_endpoints_secret", "webhook_endpoints")
    op.alter_column("webhook_endpoints", "secret", existing_type=sa.String(100), nullable=False)
    op.drop_column("webhook_endpoints", "per_call")
    op.drop_column("accounts", "webhook_previous_secret_expires_at")
    op.drop_column("accounts", "webhook_previous_secret")
    op.drop_column("accounts", "webhook_secret")
    op.drop_column("batches", "webhook")
    op.drop_column("calls", "webhook")
