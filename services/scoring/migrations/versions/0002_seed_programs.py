"""seed the exam programs offered at launch

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

programs = sa.table(
    "programs",
    sa.column("program_code", sa.String),
    sa.column("program_name", sa.String),
    sa.column("pass_mark", sa.Integer),
)


def upgrade() -> None:
    op.bulk_insert(programs, [
        {"program_code": "PSY-COUNSELLOR", "program_name": "Psychological Counsellor (Foundation)",
         "pass_mark": 60},
    ])


def downgrade() -> None:
    op.execute(programs.delete().where(programs.c.program_code == "PSY-COUNSELLOR"))
