"""certificate applications: confirmation, correction requests, who pays, history, revocation

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("level", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("qualified_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("photo_reference", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("report_available_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "candidate_payers",
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("candidate_id"),
    )
    op.create_table(
        "correction_requests",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("current_value", sa.String(length=200), nullable=True),
        sa.Column("requested_value", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decision_note", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.certificate_id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_correction_requests_certificate_id", "correction_requests", ["certificate_id"])
    op.create_table(
        "certificate_history",
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.certificate_id"]),
        sa.PrimaryKeyConstraint("certificate_id", "version"),
    )
    # certificates made before this revision start their timeline with what is known of them
    op.execute("INSERT INTO certificate_history (certificate_id, version, at, action, status, actor, detail) "
               "SELECT certificate_id, 1, COALESCE(issued_at, created_at), 'migrated', status, 'migration 0002', "
               "NULL FROM certificates")


def downgrade() -> None:
    op.drop_table("certificate_history")
    op.drop_index("ix_correction_requests_certificate_id", table_name="correction_requests")
    op.drop_table("correction_requests")
    op.drop_table("candidate_payers")
    with op.batch_alter_table("certificates") as batch:
        for column in ("version", "revocation_reason", "revoked_at", "report_available_on", "confirmed_at",
                       "photo_reference", "qualified_on", "level"):
            batch.drop_column(column)
