"""each call keeps the script and time limit it was accepted with

Revision ID: 0006
Revises: 0009
Create Date: 2026-12-01 08:40:00
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scripts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "digest"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("script_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("max_call_minutes", sa.Integer(), nullable=True))
    _backfill()
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("script_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.alter_column("max_call_minutes", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key("fk_calls_script_id_scripts", "scripts", ["script_id"], ["id"])


def _backfill() -> None:
    """Calls accepted before this revision get their campaign's script and limit as they are
    now: the best record there is of what they were accepted with."""
    bind = op.get_bind()
    campaigns = bind.execute(
        sa.text("SELECT id, account_id, script, max_call_minutes FROM campaigns")
    ).all()
    scripts: dict[tuple[str, str], dict[str, object]] = {}
    terms = []
    for campaign_id, account_id, text, minutes in campaigns:
        digest = hashlib.sha256(text.encode()).hexdigest()
        # The first campaign with this text lends its id to the script.
        script = scripts.setdefault(
            (account_id, digest),
            {"id": campaign_id, "account_id": account_id, "digest": digest, "text": text,
             "created_at": datetime.now(UTC)},
        )  # fmt: skip
        terms.append({"campaign_id": campaign_id, "script_id": script["id"], "minutes": minutes})
    if scripts:
        bind.execute(
            sa.text(
                "INSERT INTO scripts (id, account_id, digest, text, created_at)"
                " VALUES (:id, :account_id, :digest, :text, :created_at)"
            ),
            list(scripts.values()),
        )
        bind.execute(
            sa.text(
                "UPDATE calls SET script_id = :script_id, max_call_minutes = :minutes"
                " WHERE campaign_id = :campaign_id"
            ),
            terms,
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("fk_calls_script_id_scripts", type_="foreignkey")
        batch_op.drop_column("max_call_minutes")
        batch_op.drop_column("script_id")
    op.drop_table("scripts")
