"""Idempotency records expire (index on created_at); no answer, nor the client's key, kept in clear

Revision ID: 0004
Revises: 0003
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])
    # Answers stored before they were encrypted may hold a token or a code in clear. The record stays (a retry is
    # still told the effect happened: 409 idempotent_request_pending); the answer goes.
    op.execute("UPDATE idempotency_records SET answer_json = NULL WHERE answer_json NOT LIKE 'v1:%'")
    # An order's Idempotency-Key is only compared: keep its digest (usecases.key_digest), not the key.
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute("UPDATE payment_orders SET idempotency_key = encode(sha256(convert_to(idempotency_key, 'UTF8')), "
                   "'hex')")
        return
    orders = sa.table("payment_orders", sa.column("order_number", sa.String), sa.column("idempotency_key", sa.String))
    for order_number, key in connection.execute(sa.select(orders.c.order_number, orders.c.idempotency_key)).all():
        connection.execute(orders.update().where(orders.c.order_number == order_number)
                           .values(idempotency_key=hashlib.sha256(key.encode("utf-8")).hexdigest()))


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_created_at", table_name="idempotency_records")
