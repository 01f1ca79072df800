"""issue #17: report codes are credentials; only their digest is kept, hashed in place

Every report_code column (verification_reports, share_codes, report_accesses) now holds the code's digest:
the first 160 bits of SHA-256 in base32, 32 characters like the code. Each stored signed document loses its
code and the code at the end of its verify URL (put back when the code is presented). Share codes get a
column for the report code sealed under the share code (empty for codes made before: they cannot be sealed,
their verifier gets the answer without the signed document).

Revision ID: 0008
Revises: 0007
"""
import base64
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _digest(code: str) -> str:  # as services.verification.usecases.reports.report_id, frozen here
    return base64.b32encode(hashlib.sha256(code.strip().upper().encode("utf-8")).digest()[:20]).decode("ascii")


def _without_code(signed_json: str, code: str) -> str:
    signed = json.loads(signed_json)
    document = signed.get("document") or {}
    if document.get("report_code") != code:  # already without its code
        return signed_json
    document = {**document, "report_code": "", "verify_url": str(document.get("verify_url", "")).removesuffix(code)}
    return json.dumps({**signed, "document": document}, ensure_ascii=False)


def upgrade() -> None:
    op.add_column("share_codes", sa.Column("sealed_report_code", sa.Text(), nullable=True))
    connection = op.get_bind()
    for code, signed_json in connection.execute(sa.text("SELECT report_code, signed_json FROM verification_reports")
                                                ).all():
        connection.execute(sa.text("UPDATE verification_reports SET report_code = :digest, signed_json = :signed "
                                   "WHERE report_code = :code"),
                           {"digest": _digest(code), "signed": _without_code(signed_json, code), "code": code})
    for table in ("share_codes", "report_accesses"):
        for (code,) in connection.execute(sa.text(f"SELECT DISTINCT report_code FROM {table}")).all():
            connection.execute(sa.text(f"UPDATE {table} SET report_code = :digest WHERE report_code = :code"),
                               {"digest": _digest(code), "code": code})


def downgrade() -> None:
    # A digest cannot be turned back into its code: the reports stay, answerable only by the new code.
    with op.batch_alter_table("share_codes") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("sealed_report_code")
