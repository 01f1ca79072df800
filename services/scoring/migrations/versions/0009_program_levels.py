"""the qualification level a program's certificate prints

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
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("level", sa.String(length=40), nullable=True))
    op.execute("UPDATE programs SET level = '三级 Level 3' WHERE program_code = 'PSY-COUNSELLOR'")
    op.execute("UPDATE programs SET level = '本科 Bachelor' WHERE program_code = 'ZK-LAW'")


def downgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("level")
