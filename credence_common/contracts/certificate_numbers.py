"""The public certificate number: 15 digits, year (4) + exam region (2) + serial (8) + Luhn check digit.

The check digit lets the verification page say "you mistyped a digit" instead of "not found".
"""

from __future__ import annotations

import re

from stdnum import luhn

CERTIFICATE_NUMBER_PATTERN = re.compile(r"^[0-9]{15}$")


def format_certificate_number(year: int, exam_region: str, serial: int) -> str:
    if not (len(exam_region) == 2 and exam_region.isascii() and exam_region.isdigit()):
        raise ValueError("exam_region must be two digits")
    if not (0 < serial < 10**8) or not (1000 <= year <= 9999):
        raise ValueError("serial or year out of range")
    body = f"{year:04d}{exam_region}{serial:08d}"
    return body + luhn.calc_check_digit(body)


def normalise_certificate_number(value: str) -> str | None:
    """Strip the spaces and dashes people type; ``None`` when it cannot be a certificate number."""
    cleaned = re.sub(r"[\s-]", "", value or "")
    if not CERTIFICATE_NUMBER_PATTERN.fullmatch(cleaned) or not luhn.is_valid(cleaned):
        return None
    return cleaned
