"""scheduled releases and two-expert evaluation of composite results

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
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluation_state", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("evaluated_outcome", sa.String(length=10), nullable=True))
    op.create_table(
        "result_evaluations",
        sa.Column("result_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer", sa.String(length=80), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("result_id", "reviewer"),
    )
    op.create_table(
        "releases",
        sa.Column("release_id", sa.String(length=36), nullable=False),
        sa.Column("program_code", sa.String(length=32), nullable=False),
        sa.Column("sitting", sa.String(length=7), nullable=False),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("published", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("release_id"),
    )
    op.create_index("ix_releases_publish_at", "releases", ["publish_at"])


def downgrade() -> None:
    op.drop_index("ix_releases_publish_at", table_name="releases")
    op.drop_table("releases")
    op.drop_table("result_evaluations")
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.drop_column("evaluated_outcome")
        batch_op.drop_column("evaluation_state")
