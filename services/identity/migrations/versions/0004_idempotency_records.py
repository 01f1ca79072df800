"""Idempotency-Key: the answer of each first request, kept with the effect it caused

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("record_key", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=120), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("record_key", "target"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_records")
