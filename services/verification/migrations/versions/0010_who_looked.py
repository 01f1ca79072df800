"""issue #19 item 3: the holder sees every look, with its channel, the masked address and what the verifier said

- check_log: the organisation and purpose a verifier may state with a public check;
- report_accesses: every opening of a report, not only by share code: its channel (report_code, report_qr,
  share_code; rows before were all share codes), the caller's address (cut to its network after 30 days, as the
  check log's; rows before have none), the state it answered; the share code's fields become optional, and an
  index on accessed_at for the retention job.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("check_log", sa.Column("organisation", sa.String(length=100), nullable=True))
    op.add_column("check_log", sa.Column("purpose", sa.String(length=200), nullable=True))
    # batch mode: SQLite cannot drop NOT NULL in place, so alembic copies the table
    with op.batch_alter_table("report_accesses") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=16), nullable=False, server_default="share_code"))
        batch.add_column(sa.Column("client", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        for name, length in (("share_id", 36), ("verifier_name", 60), ("organisation", 100), ("purpose", 200)):
            batch.alter_column(name, existing_type=sa.String(length=length), nullable=True)
    op.create_index("ix_report_accesses_accessed_at", "report_accesses", ["accessed_at"])


def downgrade() -> None:
    op.drop_index("ix_report_accesses_accessed_at", table_name="report_accesses")
    # openings by code or QR code had no share code: before this revision they were not recorded at all
    op.execute("DELETE FROM report_accesses WHERE channel <> 'share_code'")
    with op.batch_alter_table("report_accesses") as batch:
        for name, length in (("share_id", 36), ("verifier_name", 60), ("organisation", 100), ("purpose", 200)):
            batch.alter_column(name, existing_type=sa.String(length=length), nullable=False)
        batch.drop_column("outcome")
        batch.drop_column("client")
        batch.drop_column("channel")
    with op.batch_alter_table("check_log") as batch:
        batch.drop_column("purpose")
        batch.drop_column("organisation")
