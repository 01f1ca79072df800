"""production batches and mailing

Certificates issued before this revision join a first open batch, promised to ship 30 working days from now.

Revision ID: 0004
Revises: 0003
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from credence_common.calendar import add_working_days, business_day

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "production_batches",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("batch_id"),
        sa.UniqueConstraint("batch_number"),
    )
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("delivery_address", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("delivery_status", sa.String(length=12), nullable=False, server_default="none"))
        batch.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("ship_by", sa.Date(), nullable=True))
        batch.add_column(sa.Column("courier", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("tracking_number", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_certificates_batch_id", ["batch_id"])
        batch.create_foreign_key("fk_certificates_batch_id", "production_batches", ["batch_id"], ["batch_id"])

    connection = op.get_bind()
    issued = connection.execute(sa.text("SELECT certificate_id FROM certificates WHERE status = 'issued'")).fetchall()
    if issued:
        now = datetime.now(UTC)
        batch_id = str(uuid.uuid4())
        connection.execute(sa.text("INSERT INTO production_batches (batch_id, batch_number, status, created_at) "
                                   "VALUES (:b, 1, 'open', :now)"), {"b": batch_id, "now": now})
        connection.execute(sa.text("INSERT INTO number_sequences (name, last_value) VALUES ('batch', 1)"))
        connection.execute(sa.text("UPDATE certificates SET batch_id = :b, delivery_status = 'queued', "
                                   "ship_by = :ship_by WHERE status = 'issued'"),
                           {"b": batch_id, "ship_by": add_working_days(business_day(now), 30)})


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_constraint("fk_certificates_batch_id", type_="foreignkey")
        batch.drop_index("ix_certificates_batch_id")
        for column in ("delivered_at", "shipped_at", "tracking_number", "courier", "ship_by", "batch_id",
                       "delivery_status", "delivery_address"):
            batch.drop_column(column)
    op.drop_table("production_batches")
