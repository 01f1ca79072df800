"""Identity rules in plain Python: who may register, and the admission ticket number's shape."""

from __future__ import annotations

import re

from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumValidationError

from credence_common.errors import InvalidInput

MOBILE_PATTERN = re.compile(r"^1[3-9][0-9]{9}$")
NAME_PATTERN = re.compile(r"^[^\d\s<>\"'`;{}\\/][^\d<>\"'`;{}\\/]*$")


def normalise_resident_id(value: str) -> str:
    """Validate a resident ID number (GB 11643: birth date and check digit) and return it upper-case."""
    value = value.strip().upper()
    try:
        if not value.isascii():  # full-width digits would make a second, different-looking record
            raise StdnumValidationError()
        return ric.validate(value)
    except StdnumValidationError:
        raise InvalidInput(
            "invalid_resident_id_number",
            "The resident ID number is not valid: check the 18 characters and the last check digit.",
            [{"field": "resident_id_number", "message": "not a valid resident ID number"}],
        ) from None


def normalise_mobile(value: str) -> str:
    value = value.strip().replace(" ", "").replace("-", "")
    if not MOBILE_PATTERN.fullmatch(value):
        raise InvalidInput(
            "invalid_mobile",
            "The mobile number must be 11 digits starting with 1.",
            [{"field": "mobile", "message": "not a valid mobile number"}],
        )
    return value


def normalise_full_name(value: str) -> str:
    value = " ".join(value.split())
    if not (2 <= len(value) <= 40) or not NAME_PATTERN.match(value):
        raise InvalidInput(
            "invalid_full_name",
            "The name must be the real name as written on the ID card (2 to 40 letters, no digits).",
            [{"field": "full_name", "message": "not a valid name"}],
        )
    return value


def default_exam_region(resident_id_number: str) -> str:
    """Candidates sit exams in their home province unless they choose otherwise."""
    return resident_id_number[:2]


def format_ticket_number(exam_region: str, year: int, serial: int) -> str:
    """12 digits: exam region (2), year (2), serial within region and year (8)."""
    if not (len(exam_region) == 2 and exam_region.isascii() and exam_region.isdigit()):
        raise ValueError("exam_region must be two digits")
    if not (0 < serial < 10**8):
        raise ValueError("ticket serial out of range")
    return f"{exam_region}{year % 100:02d}{serial:08d}"


def ticket_sequence_name(exam_region: str, year: int) -> str:
    return f"ticket:{exam_region}:{year}"
