"""revocation cases (a re-check took an issued certificate's qualification away), withdrawn qualifications and a
machine revocation code

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
    op.add_column("certificates", sa.Column("revocation_code", sa.String(length=20), nullable=True))
    op.create_table(
        "revocation_cases",
        sa.Column("case_id", sa.String(length=36), primary_key=True),
        sa.Column("certificate_id", sa.String(length=36), sa.ForeignKey("certificates.certificate_id"),
                  nullable=False),
        sa.Column("qualification_id", sa.String(length=36), nullable=False),
        sa.Column("reason_code", sa.String(length=20), nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("corrected_result_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decide_by", sa.Date(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_revocation_cases_certificate_id", "revocation_cases", ["certificate_id"])
    op.create_index("ix_revocation_cases_qualification_id", "revocation_cases", ["qualification_id"])
    op.create_table(
        "withdrawn_qualifications",
        sa.Column("qualification_id", sa.String(length=36), primary_key=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
    )
    op.create_index("ix_revocation_cases_status", "revocation_cases", ["status"])


def downgrade() -> None:
    op.drop_table("withdrawn_qualifications")
    op.drop_index("ix_revocation_cases_qualification_id", "revocation_cases")
    op.drop_index("ix_revocation_cases_status", "revocation_cases")
    op.drop_index("ix_revocation_cases_certificate_id", "revocation_cases")
    op.drop_table("revocation_cases")
    op.drop_column("certificates", "revocation_code")
