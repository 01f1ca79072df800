"""The admission ticket number (准考证号): its one definition, used by every schema, rule and SQL query that carries
or checks one (issue #21 item 1).

The layout, as identity issues it (``format_ticket_number``), 12 characters::

    11 26 0000001 X
    |  |  |       '-- check character: ISO 7064 MOD 11-2 over the first 11 digits, 0-9 or X (as on a resident
    |  |  |           ID card), so any single mistyped character or swapped pair of neighbours is caught
    |  |  '---------- serial (7 digits) within the exam region and year, from 0000001
    |  '------------- year of registration, last two digits
    '---------------- exam region (2 digits), the province's code

Tickets imported from the earlier system (``POST /api/v1/legacy-tickets``) follow the same shape; only the
shape (``TICKET_NUMBER_REGEX``) is checked on them and on every schema, while identity also checks the check
character where a candidate types a ticket in (``is_valid_ticket_number``). Migration files written before this
module keep their own copies of the pattern as history.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field
from stdnum.iso7064 import mod_11_2

# The shape: 11 digits and a check character. The same text is a Python regex and a PostgreSQL POSIX regex.
TICKET_NUMBER_REGEX = r"[0-9]{11}[0-9X]"
TICKET_NUMBER_PATTERN = re.compile(TICKET_NUMBER_REGEX)  # use with fullmatch

# The pydantic type of every field that carries a ticket number (its JSON schema pattern is anchored).
TicketNumber = Annotated[str, Field(pattern=f"^{TICKET_NUMBER_REGEX}$",
                                    description="A 12-character admission ticket number (准考证号)")]


def format_ticket_number(exam_region: str, year: int, serial: int) -> str:
    """12 characters: exam region (2), year (2), serial within region and year (7), and an ISO 7064
    MOD 11-2 check character (0-9 or X, as on resident ID cards) that catches any single typo."""
    if not (len(exam_region) == 2 and exam_region.isascii() and exam_region.isdigit()):
        raise ValueError("exam_region must be two digits")
    if not (0 < serial < 10**7):
        raise ValueError("ticket serial out of range")
    body = f"{exam_region}{year % 100:02d}{serial:07d}"
    return body + mod_11_2.calc_check_digit(body)


def has_ticket_number_shape(value: str | None) -> bool:
    """The shape alone (what schemas and imports check)."""
    return isinstance(value, str) and TICKET_NUMBER_PATTERN.fullmatch(value) is not None


def is_valid_ticket_number(value: str | None) -> bool:
    """The shape and the check character."""
    return value is not None and has_ticket_number_shape(value) and mod_11_2.is_valid(value)


def sql_ticket_number_regex() -> str:
    """The anchored pattern as a quoted SQL literal for PostgreSQL's ``~`` / ``!~`` operators (the regex holds no
    quote, so nothing needs escaping; checked by tests/unit/test_ticket_numbers.py)."""
    pattern = f"^{TICKET_NUMBER_REGEX}$"
    if "'" in pattern or "\\" in pattern:
        raise ValueError("the ticket-number pattern would need SQL escaping")
    return f"'{pattern}'"
