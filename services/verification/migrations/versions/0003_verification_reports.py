"""verification reports, and the holder and level in the read model

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verifiable_certificates") as batch:
        batch.add_column(sa.Column("candidate_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("level", sa.String(length=40), nullable=True))
        batch.create_index("ix_verifiable_certificates_candidate_id", ["candidate_id"])
    op.create_table(
        "verification_reports",
        sa.Column("report_code", sa.String(length=32), nullable=False),
        sa.Column("certificate_number", sa.String(length=15), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("signed_json", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("report_code"),
    )
    op.create_index("ix_verification_reports_certificate_number", "verification_reports", ["certificate_number"])
    op.create_index("ix_verification_reports_candidate_id", "verification_reports", ["candidate_id"])
    # certificates already known get their holder from the event log on the next rebuild
    # (python -m services.verification.cli rebuild)


def downgrade() -> None:
    op.drop_index("ix_verification_reports_candidate_id", table_name="verification_reports")
    op.drop_index("ix_verification_reports_certificate_number", table_name="verification_reports")
    op.drop_table("verification_reports")
    with op.batch_alter_table("verifiable_certificates") as batch:
        batch.drop_index("ix_verifiable_certificates_candidate_id")
        batch.drop_column("level")
        batch.drop_column("candidate_id")
