"""issue #17: ID numbers kept in their public form, share codes of closed reports revoked, check log by age

- verifiable_certificates keeps only the last four of an ID number (public answers show no more);
- share codes not yet used of reports closed before closing revoked them: consent ended with the report;
- an index on check_log.checked_at for the retention job (addresses cut after 30 days, rows deleted later).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from credence_common.security.masking import mask_resident_id_public

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT certificate_number, resident_id_number_masked "
                                      "FROM verifiable_certificates")).all()
    for number, shown in rows:
        if shown != mask_resident_id_public(shown):
            connection.execute(sa.text("UPDATE verifiable_certificates SET resident_id_number_masked = :masked "
                                       "WHERE certificate_number = :number"),
                               {"masked": mask_resident_id_public(shown), "number": number})
    op.execute("UPDATE share_codes SET revoked_at = (SELECT closed_at FROM verification_reports r "
               "WHERE r.report_code = share_codes.report_code) "
               "WHERE revoked_at IS NULL AND used_at IS NULL AND report_code IN "
               "(SELECT report_code FROM verification_reports WHERE closed_at IS NOT NULL)")
    op.create_index("ix_check_log_checked_at", "check_log", ["checked_at"])


def downgrade() -> None:
    # The longer masked form cannot come back from the last four; a rebuild from the event log restores it.
    op.drop_index("ix_check_log_checked_at", table_name="check_log")
