"""a refund the provider is still making (WeChat Pay's PROCESSING) is asked about on a backoff schedule until it
ends, in case its notification never comes

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checks", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_refunds_next_check_at", ["status", "next_check_at"])


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index("ix_refunds_next_check_at")
        batch.drop_column("checks")
        batch.drop_column("next_check_at")
