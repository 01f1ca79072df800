"""queued imports: result files too large for the request are imported in the background

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queued_imports",
        sa.Column("batch_id", sa.String(length=36), primary_key=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column("content_encrypted", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_queued_imports_file_sha256", "queued_imports", ["file_sha256"])
    op.create_index("ix_queued_imports_status", "queued_imports", ["status"])


def downgrade() -> None:
    op.drop_index("ix_queued_imports_status", table_name="queued_imports")
    op.drop_index("ix_queued_imports_file_sha256", table_name="queued_imports")
    op.drop_table("queued_imports")
