"""score reviews (re-checks after release) and course exemptions

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_window_days", sa.Integer(), server_default="15", nullable=False))
    op.create_table(
        "score_reviews",
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("result_id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("old_score", sa.Integer(), nullable=False),
        sa.Column("new_score", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=80), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("review_id"),
        sa.UniqueConstraint("result_id"),
    )
    op.create_index("ix_score_reviews_candidate_id", "score_reviews", ["candidate_id"])
    op.create_table(
        "course_exemptions",
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("program_code", sa.String(length=32), nullable=False),
        sa.Column("course_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("granted_by", sa.String(length=80), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("candidate_id", "program_code", "course_code"),
    )


def downgrade() -> None:
    op.drop_table("course_exemptions")
    op.drop_index("ix_score_reviews_candidate_id", table_name="score_reviews")
    op.drop_table("score_reviews")
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("review_window_days")
