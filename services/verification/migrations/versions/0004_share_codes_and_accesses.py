"""consent: one-time share codes and the log of who opened a full report

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_codes",
        sa.Column("share_id", sa.String(length=36), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("report_code", sa.String(length=32), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("share_id"),
        sa.UniqueConstraint("code_digest"),
    )
    op.create_index("ix_share_codes_report_code", "share_codes", ["report_code"])
    op.create_index("ix_share_codes_candidate_id", "share_codes", ["candidate_id"])
    op.create_table(
        "report_accesses",
        sa.Column("access_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("report_code", sa.String(length=32), nullable=False),
        sa.Column("certificate_number", sa.String(length=15), nullable=False),
        sa.Column("share_id", sa.String(length=36), nullable=False),
        sa.Column("verifier_name", sa.String(length=60), nullable=False),
        sa.Column("organisation", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("access_id"),
    )
    op.create_index("ix_report_accesses_candidate_id", "report_accesses", ["candidate_id"])


def downgrade() -> None:
    op.drop_index("ix_report_accesses_candidate_id", table_name="report_accesses")
    op.drop_table("report_accesses")
    op.drop_index("ix_share_codes_candidate_id", table_name="share_codes")
    op.drop_index("ix_share_codes_report_code", table_name="share_codes")
    op.drop_table("share_codes")
