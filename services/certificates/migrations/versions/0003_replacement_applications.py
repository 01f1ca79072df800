"""reissue and correction-and-replacement applications

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
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("replaces_certificate_id", sa.String(length=36), nullable=True))
    op.create_table(
        "replacement_applications",
        sa.Column("application_id", sa.String(length=36), nullable=False),
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("identity_video_reference", sa.String(length=200), nullable=True),
        sa.Column("corrected_holder_name", sa.String(length=40), nullable=True),
        sa.Column("fee_fen", sa.Integer(), nullable=True),
        sa.Column("payment_order_number", sa.String(length=40), nullable=True),
        sa.Column("new_certificate_id", sa.String(length=36), nullable=True),
        sa.Column("cancel_reason", sa.String(length=200), nullable=True),
        sa.Column("handled_by", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.certificate_id"]),
        sa.PrimaryKeyConstraint("application_id"),
    )
    op.create_index("ix_replacement_applications_certificate_id", "replacement_applications", ["certificate_id"])
    op.create_index("ix_replacement_applications_candidate_id", "replacement_applications", ["candidate_id"])


def downgrade() -> None:
    op.drop_index("ix_replacement_applications_candidate_id", table_name="replacement_applications")
    op.drop_index("ix_replacement_applications_certificate_id", table_name="replacement_applications")
    op.drop_table("replacement_applications")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("replaces_certificate_id")
