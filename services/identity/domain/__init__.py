"""Identity rules in plain Python: who may register, what a login name is, the admission ticket
number's shape, and how sign-in failures slow an attacker down."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import NoReturn

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, InvalidComponent
from stdnum.exceptions import ValidationError as StdnumValidationError

from credence_common.contracts.errors import InvalidInput

# The ticket number's layout, format and check are the contracts' (one owner, issue #21 item 1); identity issues
# and checks tickets through these names.
from credence_common.contracts.tickets import format_ticket_number as format_ticket_number
from credence_common.contracts.tickets import is_valid_ticket_number as is_valid_ticket_number

NAME_PATTERN = re.compile(r"^[^\d\s<>\"'`;{}\\/][^\d<>\"'`;{}\\/]*$")
EXAM_REGION_PATTERN = re.compile(r"^[0-9]{2}$")

LOCKOUT_FREE_FAILURES = 4
LOCKOUT_MAX = timedelta(minutes=15)


def _refusal(code: str, field: str, message: str, detail: str) -> InvalidInput:
    return InvalidInput(code, message, [{"field": field, "message": detail}])


def _refuse(code: str, field: str, message: str, detail: str) -> NoReturn:
    raise _refusal(code, field, message, detail)


def normalise_resident_id(value: str, today: date | None = None) -> str:
    """A resident ID number (GB 11643): 18 characters, a real region, a real birth date in the past and
    the check character. Returned upper-case."""
    value = value.strip().upper()
    if not value.isascii():  # full-width digits would make a second, different-looking record
        _refuse("invalid_resident_id_number", "resident_id_number",
                "The resident ID number must be written with ordinary digits.", "not ASCII digits")
    problem = None
    try:
        ric.validate(value)
    except InvalidChecksum:
        problem = ("The resident ID number's last character does not match the others: check for a typing mistake.",
                   "wrong check character")
    except InvalidComponent:
        problem = ("The resident ID number holds an impossible birth date or an unknown region.",
                   "impossible birth date or region")
    except StdnumValidationError:
        problem = ("The resident ID number must be 18 characters: 17 digits and a digit or X.", "wrong format")
    if problem:  # raised outside the except block: the library's exception is noise in the logs
        _refuse("invalid_resident_id_number", "resident_id_number", *problem)
    if ric.get_birth_date(value) > (today or date.today()):
        _refuse("invalid_resident_id_number", "resident_id_number",
                "The resident ID number holds a birth date in the future.", "impossible birth date")
    return value


def birth_date_of(resident_id_number: str) -> date:
    return ric.get_birth_date(resident_id_number)


def normalise_mobile(value: str) -> str:
    """A mainland mobile number as its 11 national digits (accepts +86, spaces and dashes)."""
    value = (value or "").strip()
    if not value.isascii():
        _refuse("invalid_mobile", "mobile", "The mobile number must be written with ordinary digits.", "not ASCII")
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        number = None
    if (number is None or number.country_code != 86 or not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE):
        _refuse("invalid_mobile", "mobile", "The mobile number must be a valid mainland China mobile number.",
                "not a valid mobile number")
    return str(number.national_number)


def normalise_email(value: str) -> str:
    """Syntax only (no DNS look-up: registration must not depend on the network). Lower-cased, because
    mail providers treat addresses case-insensitively and one person must not register twice."""
    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        pass
    _refuse("invalid_email", "email", "The email address is not valid.", "not a valid email address")


def classify_login(login: str) -> tuple[str, str]:
    """A login name is an email address or a mobile number: ('email'|'mobile', normalised value)."""
    login = (login or "").strip()
    if "@" in login:
        return "email", normalise_email(login)
    return "mobile", normalise_mobile(login)


def normalise_full_name(value: str) -> str:
    value = " ".join(value.split())
    if not (2 <= len(value) <= 40) or not NAME_PATTERN.match(value):
        _refuse("invalid_full_name", "full_name",
                "The name must be the real name as written on the ID card (2 to 40 letters, no digits).",
                "not a valid name")
    return value


def check_exam_region(value: str) -> str:
    if not EXAM_REGION_PATTERN.fullmatch(value or ""):
        _refuse("invalid_exam_region", "exam_region", "The exam region is a two-digit code.", "not two digits")
    return value


def ticket_sequence_name(exam_region: str, year: int) -> str:
    return f"ticket:{exam_region}:{year}"


def lockout_until(failures: int, now: datetime, free_failures: int = LOCKOUT_FREE_FAILURES) -> datetime | None:
    """``free_failures`` cost nothing; after them each failure doubles the wait (1 s, 2 s, 4 s ... at most
    15 min). The exponent is capped before it is computed, so no count can overflow."""
    if failures <= free_failures:
        return None
    delay = min(timedelta(seconds=2 ** min(failures - free_failures - 1, 10)), LOCKOUT_MAX)
    return now + delay
