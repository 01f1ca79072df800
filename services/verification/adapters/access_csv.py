"""The holder's access log as CSV (who looked at their certificate and reports): UTF-8 with a byte order mark, so
that a spreadsheet reads the Chinese right, one row per look, in the order given (newest first)."""

from __future__ import annotations

import csv
import io

from credence_common.contracts.verification import AccessList

CSV_COLUMNS = ("at", "channel", "certificate_number", "report_id", "address_masked", "verifier_name", "organisation",
               "purpose", "outcome")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str:
    """A cell as a spreadsheet will read it: what a verifier typed cannot start a formula (OWASP's CSV
    injection advice: a leading quote makes it text)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def render(listed: AccessList) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in listed.accesses:
        writer.writerow([_csv_cell(value) for value in (
            a.at.isoformat(), a.channel, a.certificate_number, a.report_code, a.address_masked, a.verifier_name,
            a.organisation, a.purpose, a.outcome)])
    return "\ufeff" + out.getvalue()
