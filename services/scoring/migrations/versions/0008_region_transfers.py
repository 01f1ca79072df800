"""region transfers (转考) from identity's events

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "region_transfers",
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("from_region", sa.String(length=2), nullable=False),
        sa.Column("to_region", sa.String(length=2), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    op.create_index("ix_region_transfers_candidate_id", "region_transfers", ["candidate_id"])


def downgrade() -> None:
    op.drop_index("ix_region_transfers_candidate_id", table_name="region_transfers")
    op.drop_table("region_transfers")
