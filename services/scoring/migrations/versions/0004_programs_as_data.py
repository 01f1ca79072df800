"""programs as data (composite and course-based), courses, import batches, result audit

Revision ID: 0004
Revises: 0003
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COMPOSITE_RULES = {"pass_mark": 60, "machine_exam_weight_percent": 70, "drill_weight_percent": 30,
                   "violation_deduction": 10, "requires_qualification_review": True, "requires_homework": True}
SELF_STUDY_COURSES = [
    ("00015", "English (II)", "written", 60, True),
    ("00227", "Company Law", "written", 60, True),
    ("00230", "Contract Law", "written", 60, True),
    ("00233", "Tax Law", "written", 60, False),
    ("00249", "Legal Practice (practical)", "practical", 60, True),
]


def upgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="composite", nullable=False))
        batch_op.add_column(sa.Column("rules_json", sa.Text(), nullable=True))
    op.create_table(
        "courses",
        sa.Column("program_code", sa.String(length=32), sa.ForeignKey("programs.program_code"), nullable=False),
        sa.Column("course_code", sa.String(length=32), nullable=False),
        sa.Column("course_name", sa.String(length=120), nullable=False),
        sa.Column("course_kind", sa.String(length=10), nullable=False),
        sa.Column("pass_mark", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("program_code", "course_code"),
    )
    op.create_table(
        "import_batches",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("recorded", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("errors_json", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_index("ix_import_batches_file_sha256", "import_batches", ["file_sha256"])
    op.create_table(
        "result_audit",
        sa.Column("audit_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("result_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("before_json", sa.Text(), nullable=True),
        sa.Column("after_json", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("audit_id"),
    )
    op.create_index("ix_result_audit_result_id", "result_audit", ["result_id"])
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("course_code", sa.String(length=32), server_default="", nullable=False))
        batch_op.add_column(sa.Column("components_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.drop_constraint("uq_result_sitting", type_="unique")
        batch_op.create_unique_constraint("uq_result_course_sitting",
                                          ["ticket_number", "program_code", "course_code", "sitting"])

    programs = sa.table("programs", sa.column("program_code", sa.String), sa.column("program_name", sa.String),
                        sa.column("pass_mark", sa.Integer), sa.column("kind", sa.String),
                        sa.column("rules_json", sa.Text))
    op.execute(programs.update().where(programs.c.program_code == "PSY-COUNSELLOR")
               .values(kind="composite", rules_json=json.dumps(COMPOSITE_RULES, sort_keys=True)))
    op.bulk_insert(programs, [{"program_code": "ZK-LAW", "program_name": "Self-study Bachelor of Law",
                               "pass_mark": 60, "kind": "course_based", "rules_json": None}])
    courses = sa.table("courses", sa.column("program_code", sa.String), sa.column("course_code", sa.String),
                       sa.column("course_name", sa.String), sa.column("course_kind", sa.String),
                       sa.column("pass_mark", sa.Integer), sa.column("required", sa.Boolean))
    op.bulk_insert(courses, [{"program_code": "ZK-LAW", "course_code": code, "course_name": name,
                              "course_kind": kind, "pass_mark": mark, "required": required}
                             for code, name, kind, mark, required in SELF_STUDY_COURSES])


def downgrade() -> None:
    op.execute("DELETE FROM courses")
    op.execute("DELETE FROM programs WHERE program_code = 'ZK-LAW'")
    with op.batch_alter_table("exam_results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_result_course_sitting", type_="unique")
        batch_op.create_unique_constraint("uq_result_sitting", ["ticket_number", "program_code", "sitting"])
        batch_op.drop_column("batch_id")
        batch_op.drop_column("components_json")
        batch_op.drop_column("course_code")
    op.drop_index("ix_result_audit_result_id", table_name="result_audit")
    op.drop_table("result_audit")
    op.drop_index("ix_import_batches_file_sha256", table_name="import_batches")
    op.drop_table("import_batches")
    op.drop_table("courses")
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("rules_json")
        batch_op.drop_column("kind")
