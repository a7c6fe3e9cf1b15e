"""raw callback parameters, SMS bodies and Stripe payloads may be purged after RETENTION_DAYS

Revision ID: 0013
Revises: 0006
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, payload column, its type): the payload becomes NULL once purged, and a partial index
# on created_at holds only the rows not purged yet, so each purge finds its rows without reading
# those it already emptied.
_PURGED = (
    ("call_events", "params", sa.JSON()),
    ("sms_messages", "body", sa.Text()),
    ("external_events", "payload", sa.JSON()),
)


def upgrade() -> None:
    for table, column, type_ in _PURGED:
        op.alter_column(table, column, existing_type=type_, nullable=True)
    # Built without blocking writes to tables that may already be large.
    with op.get_context().autocommit_block():
        for table, column, _type in _PURGED:
            op.create_index(
                f"ix_{table}_unpurged",
                table,
                ["created_at"],
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    for table, column, type_ in _PURGED:
        op.drop_index(f"ix_{table}_unpurged", table_name=table)
        filler = "'{}'" if column != "body" else "''"
        op.execute(f"UPDATE {table} SET {column} = {filler} WHERE {column} IS NULL")
        op.alter_column(table, column, existing_type=type_, nullable=False)
