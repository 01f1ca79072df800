"""Idempotency records expire (index on created_at); no code or token kept in clear

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])
    # Answers stored before they were encrypted may hold a token or a code in clear. The record stays (a retry is
    # still told the effect happened: 409 idempotent_request_pending); the answer goes.
    op.execute("UPDATE idempotency_records SET answer_json = NULL WHERE answer_json NOT LIKE 'v1:%'")
    # A text's code is needed only until it is sent: sent and expired texts keep no text (sms.py erases it now).
    op.execute("UPDATE sms_queue SET text_encrypted = '' WHERE state <> 'pending'")
    # The development adapter's texts were kept in clear; it now encrypts them. Old ones are of no use (a code
    # lives five minutes).
    op.execute("DELETE FROM dev_sms_messages")


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_created_at", table_name="idempotency_records")
