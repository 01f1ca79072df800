"""education-record reports: a report names a certificate or the holder's exam record; corrections mark
record reports made before them; a certificate's report opens on its report_available_on

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop NOT NULL in place, so alembic copies the table
    with op.batch_alter_table("verification_reports") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=False, server_default="certificate"))
        batch.add_column(sa.Column("holder_name", sa.String(length=40), nullable=True))
        batch.alter_column("certificate_number", existing_type=sa.String(length=15), nullable=True)
    with op.batch_alter_table("report_accesses") as batch:
        batch.alter_column("certificate_number", existing_type=sa.String(length=15), nullable=True)
    op.add_column("verifiable_certificates", sa.Column("report_available_on", sa.Date(), nullable=True))
    op.create_table(
        "record_corrections",
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("candidate_id"),
    )


def downgrade() -> None:
    op.drop_table("record_corrections")
    with op.batch_alter_table("verifiable_certificates") as batch:
        batch.drop_column("report_available_on")
    op.execute("DELETE FROM report_accesses WHERE certificate_number IS NULL")
    op.execute("DELETE FROM verification_reports WHERE kind <> 'certificate'")
    with op.batch_alter_table("report_accesses") as batch:
        batch.alter_column("certificate_number", existing_type=sa.String(length=15), nullable=False)
    with op.batch_alter_table("verification_reports") as batch:
        batch.alter_column("certificate_number", existing_type=sa.String(length=15), nullable=False)
        batch.drop_column("holder_name")
        batch.drop_column("kind")
