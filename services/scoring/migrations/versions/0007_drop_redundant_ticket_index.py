"""drop ix_exam_results_ticket_number: uq_result_course_sitting leads with ticket_number already

Every index is paid for on each of a million imported rows; this one answered nothing the unique
constraint's index does not.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.drop_index("ix_exam_results_ticket_number")


def downgrade() -> None:
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.create_index("ix_exam_results_ticket_number", ["ticket_number"], unique=False)
