"""A production batch as the printer's CSV: UTF-8 with a byte order mark, so that a spreadsheet reads the Chinese
names right, one row per certificate in the order given, every cell safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

PRINTER_COLUMNS = ("certificate_id", "certificate_number", "holder_name", "resident_id_number_masked",
                   "program_name", "level", "qualified_on", "issued_on", "photo_reference", "delivery_address")


def render(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PRINTER_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return "\ufeff" + out.getvalue()  # a BOM, so spreadsheet programs read the Chinese names as UTF-8


def _cell(value: str) -> str:
    """A value a spreadsheet would run as a formula is written as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
