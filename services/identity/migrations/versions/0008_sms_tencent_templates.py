"""SMS through vendors that send approved templates (Tencent Cloud SMS): the queue keeps each text's purpose and
its template values (encrypted), the vendor's SerialNo and last error code; delivery receipts by SerialNo

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sms_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("params_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("serial_no", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=80), nullable=True))
        batch_op.create_index(batch_op.f("ix_sms_queue_serial_no"), ["serial_no"], unique=False)
    op.create_table(
        "sms_receipts",
        sa.Column("serial_no", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("description", sa.String(length=100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial_no"),
    )


def downgrade() -> None:
    op.drop_table("sms_receipts")
    with op.batch_alter_table("sms_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_queue_serial_no"))
        batch_op.drop_column("last_error")
        batch_op.drop_column("serial_no")
        batch_op.drop_column("params_encrypted")
        batch_op.drop_column("purpose")
