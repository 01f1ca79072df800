"""fee schedule, dues, multi-item orders, provider payments, notification nonces, refunds, incidents

Orders made by 0001 (one per certificate, HMAC callbacks) become one due and one single-item order each.

Revision ID: 0002
Revises: 0001
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STARTING_FEES = (
    ("certificate_fee", "Certificate fee (证书费)", 6000),
    ("certificate_reissue", "Certificate reissue (证书补发)", 10000),
    ("certificate_correction", "Certificate correction and replacement (证书更正换发)", 20000),
)


def upgrade() -> None:
    fees = op.create_table(
        "fees",
        sa.Column("fee_code", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=120), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("fee_code"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(fees, [{"fee_code": code, "description": text, "amount_fen": amount, "updated_at": now,
                           "updated_by": "migration 0002"} for code, text, amount in STARTING_FEES])

    op.create_table(
        "payment_dues",
        sa.Column("due_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("reference_id", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("payer_kind", sa.String(length=12), nullable=False),
        sa.Column("payer_id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("open_order_number", sa.String(length=40), nullable=True),
        sa.Column("paid_order_number", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("due_id"),
        sa.UniqueConstraint("purpose", "reference_id", name="uq_due_purpose_reference"),
    )
    op.create_index("ix_payment_dues_payer", "payment_dues", ["payer_kind", "payer_id", "status"])

    # 0001's orders: one due each (its certificate), same amount and payer.
    op.execute("""
        INSERT INTO payment_dues (due_id, purpose, reference_id, candidate_id, payer_kind, payer_id, amount_fen,
                                  status, open_order_number, paid_order_number, created_at)
        SELECT 'due-' || order_number, purpose, reference_id,
               CASE WHEN payer_kind = 'candidate' THEN payer_id ELSE '' END, payer_kind, payer_id, amount_fen,
               CASE WHEN status = 'paid' THEN 'paid' ELSE 'open' END,
               CASE WHEN status = 'paid' THEN NULL ELSE order_number END,
               CASE WHEN status = 'paid' THEN order_number ELSE NULL END, created_at
        FROM payment_orders""")

    op.create_table(
        "provider_payments",
        sa.Column("payment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_transaction_id", sa.String(length=64), nullable=False),
        sa.Column("order_number", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("credited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at_provider", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.PrimaryKeyConstraint("payment_id"),
        sa.UniqueConstraint("provider", "provider_transaction_id", name="uq_provider_transaction"),
    )
    op.create_index("ix_provider_payments_order_number", "provider_payments", ["order_number"])
    op.execute("""
        INSERT INTO provider_payments (provider, provider_transaction_id, order_number, amount_fen, credited_at,
                                       paid_at_provider, source)
        SELECT COALESCE(provider, 'sandbox'), provider_transaction_id, order_number, amount_fen, paid_at, paid_at,
               'notification'
        FROM payment_orders WHERE status = 'paid' AND provider_transaction_id IS NOT NULL""")

    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_constraint("uq_order_purpose_reference", type_="unique")
        batch.drop_index("ix_payment_orders_payer_id")
        batch.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=False,
                                   server_default="migrated"))
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=False, server_default="CNY"))
        batch.add_column(sa.Column("pay_url", sa.String(length=300), nullable=False, server_default=""))
        batch.add_column(sa.Column("refunded_fen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("refund_reserved_fen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("invoice_title", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("invoice_tax_number", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE payment_orders SET idempotency_key = order_number, expires_at = created_at, "
               "provider = COALESCE(provider, 'sandbox'), status = CASE WHEN status = 'paid' THEN 'paid' "
               "ELSE 'created' END")

    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_column("purpose")
        batch.drop_column("reference_id")
        batch.alter_column("status", existing_type=sa.String(length=12), type_=sa.String(length=20))
        batch.alter_column("provider", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_unique_constraint("uq_order_idempotency", ["payer_kind", "payer_id", "idempotency_key"])
        batch.create_index("ix_payment_orders_payer", ["payer_kind", "payer_id"])
        batch.create_index("ix_payment_orders_status_expiry", ["status", "expires_at"])

    op.create_table(
        "payment_order_items",
        sa.Column("order_number", sa.String(length=40), nullable=False),
        sa.Column("due_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["due_id"], ["payment_dues.due_id"]),
        sa.ForeignKeyConstraint(["order_number"], ["payment_orders.order_number"]),
        sa.PrimaryKeyConstraint("order_number", "due_id"),
    )
    # after payment_orders is rebuilt (SQLite rebuilds a table by copying it): items point at the new table
    op.execute("INSERT INTO payment_order_items (order_number, due_id, amount_fen) "
               "SELECT order_number, 'due-' || order_number, amount_fen FROM payment_orders")

    op.create_table(
        "notification_nonces",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "nonce"),
    )
    op.create_table(
        "refunds",
        sa.Column("refund_number", sa.String(length=40), nullable=False),
        sa.Column("order_number", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("reference_id", sa.String(length=64), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promised_by", sa.Date(), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_number"], ["payment_orders.order_number"]),
        sa.PrimaryKeyConstraint("refund_number"),
        sa.UniqueConstraint("requested_by", "request_key", name="uq_refund_request"),
    )
    op.create_index("ix_refunds_order_number", "refunds", ["order_number"])
    op.create_index("ix_refunds_status", "refunds", ["status", "promised_by"])
    op.create_table(
        "payment_incidents",
        sa.Column("incident_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("order_number", sa.String(length=40), nullable=True),
        sa.Column("provider_transaction_id", sa.String(length=64), nullable=True),
        sa.Column("body_sha256", sa.String(length=64), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_index("ix_payment_incidents_order_number", "payment_incidents", ["order_number"])


def downgrade() -> None:
    raise NotImplementedError("payments 0002 reshapes orders into dues and items; restore a backup instead")
