"""a single call's or SMS's refusal is its own subject, found by its number through an index

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The refusals kept under their number were numbered across accounts: each becomes a
    # subject of its own, its id the event's (a UUIDv7 too), so no sequence counts another
    # account's refusals any more.
    op.execute(
        "UPDATE events SET subject_type = 'refusal', subject_id = id, sequence = 1 "
        "WHERE subject_type = 'number'"
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_events_refusal_number",
            "events",
            ["account_id", sa.text("(data ->> 'number')"), sa.text("id DESC")],
            postgresql_where=sa.text("subject_type = 'refusal'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_events_refusal_number", table_name="events")
    op.execute(
        """
        UPDATE events SET subject_type = 'number', subject_id = numbered.number,
                          sequence = numbered.sequence
        FROM (
            SELECT id, data ->> 'number' AS number,
                   row_number() OVER (PARTITION BY data ->> 'number' ORDER BY id) AS sequence
            FROM events WHERE subject_type = 'refusal'
        ) AS numbered
        WHERE events.id = numbered.id
        """
    )
