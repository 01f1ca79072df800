"""a remembered notification nonce keeps the SHA-256 of the body it came with, so that an exact copy of a
notification already applied is answered as done (the provider stops retrying) while the same nonce on another
body is still refused

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: nonces remembered before this revision have no digest (they are pruned after a day)
    with op.batch_alter_table("notification_nonces") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_nonces") as batch:
        batch.drop_column("body_sha256")
