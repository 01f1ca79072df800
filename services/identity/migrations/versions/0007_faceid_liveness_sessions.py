"""Liveness sessions of the online identity verifier (Tencent Cloud FaceID's BizToken), bound to their candidate

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_liveness_sessions",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("verifier", sa.String(length=40), nullable=False),
        sa.Column("biz_token_index", sa.String(length=64), nullable=False),
        sa.Column("biz_token_encrypted", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.candidate_id"]),
        sa.PrimaryKeyConstraint("session_id"),
        sa.UniqueConstraint("biz_token_index"),
    )
    op.create_index("ix_identity_liveness_sessions_candidate_id", "identity_liveness_sessions", ["candidate_id"])


def downgrade() -> None:
    op.drop_index("ix_identity_liveness_sessions_candidate_id", table_name="identity_liveness_sessions")
    op.drop_table("identity_liveness_sessions")
