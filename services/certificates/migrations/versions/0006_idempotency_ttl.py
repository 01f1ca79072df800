"""Idempotency records expire (index on created_at); no answer kept in clear

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])
    # Answers stored before they were encrypted may hold a token or a code in clear. The record stays (a retry is
    # still told the effect happened: 409 idempotent_request_pending); the answer goes.
    op.execute("UPDATE idempotency_records SET answer_json = NULL WHERE answer_json NOT LIKE 'v1:%'")


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_created_at", table_name="idempotency_records")
