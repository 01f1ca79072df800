"""an order is paid by a QR code (native) or inside WeChat (jsapi, with WeChat Pay's prepay_id)

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
    # existing orders were all native; the payer's openid is never stored, only the prepay_id it opened
    with op.batch_alter_table("payment_orders") as batch:
        batch.add_column(sa.Column("pay_method", sa.String(length=8), nullable=False, server_default="native"))
        batch.add_column(sa.Column("prepay_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_column("prepay_id")
        batch.drop_column("pay_method")
