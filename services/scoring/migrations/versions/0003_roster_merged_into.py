"""roster entries remember which primary ticket number a merged one now points to

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("roster", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.String(length=12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("roster", schema=None) as batch_op:
        batch_op.drop_column("merged_into")
