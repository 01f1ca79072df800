"""a refund may name the one due of its order it gives back (one student's fee of an institution's order)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("due_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_refunds_due_id", ["due_id"])


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index("ix_refunds_due_id")
        batch.drop_column("due_id")
