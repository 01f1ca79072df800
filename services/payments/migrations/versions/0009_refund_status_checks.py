"""a refund the provider is still making (WeChat Pay's PROCESSING) is asked about on a backoff schedule until it
ends, in case its notification never comes; one the provider reports ABNORMAL is held for a person

A refund already PROCESSING when this runs (pending, with the provider's refund id) is due for its first check at
once: nothing else would ever look at it again (the submit timer skips refunds the provider accepted).

Revision ID: 0009
Revises: 0008
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from credence_common.persistence.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checks", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("abnormal_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_refunds_next_check_at", ["status", "next_check_at"])
    # written through the model's column type, so SQLite stores the moment as the service writes and compares it
    refunds = sa.table("refunds", sa.column("status", sa.String), sa.column("provider_refund_id", sa.String),
                       sa.column("next_check_at", UTCDateTime()))
    op.execute(sa.update(refunds).where(refunds.c.status == "pending", refunds.c.provider_refund_id.is_not(None))
               .values(next_check_at=datetime.now(UTC)))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index("ix_refunds_next_check_at")
        batch.drop_column("abnormal_at")
        batch.drop_column("checks")
        batch.drop_column("next_check_at")
