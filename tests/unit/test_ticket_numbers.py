"""The admission ticket number has one definition (credence_common/contracts/tickets.py, issue #21 item 1): every
schema field, identity's rules, the CSV import and the PostgreSQL fast path's SQL use it."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from credence_common.contracts import events, identity, scoring
from credence_common.contracts.tickets import (
    TICKET_NUMBER_PATTERN,
    TICKET_NUMBER_REGEX,
    TicketNumber,
    format_ticket_number,
    is_valid_ticket_number,
    sql_ticket_number_regex,
)
from services.identity import domain as identity_domain
from services.scoring.adapters import fast_import
from services.scoring.domain import result_files

ROOT = Path(__file__).resolve().parents[2]


class Holder(BaseModel):
    ticket_number: TicketNumber


def test_the_layout_region_year_serial_check_character():
    number = format_ticket_number("11", 2026, 1)
    assert number[:2] == "11" and number[2:4] == "26" and number[4:11] == "0000001" and len(number) == 12
    assert is_valid_ticket_number(number) and TICKET_NUMBER_PATTERN.fullmatch(number)
    assert Holder(ticket_number=number).ticket_number == number
    assert not is_valid_ticket_number(number[:-1] + ("0" if number[-1] != "0" else "1"))  # a wrong check character
    assert not is_valid_ticket_number(None) and not is_valid_ticket_number("11260000001")


@pytest.mark.parametrize("bad", ["11260000001", "1126000000111", "11260000001x", "1126000A0011"])
def test_every_schema_refuses_another_shape(bad):
    with pytest.raises(ValidationError):
        Holder(ticket_number=bad)
    with pytest.raises(ValidationError):
        identity.ChoosePrimaryTicket(ticket_number=bad)
    with pytest.raises(ValidationError):
        scoring.ResultLine(ticket_number=bad, program_code="ZK-LAW", sitting="2026-04", final_score=60)


def test_the_schemas_and_the_sql_render_the_same_pattern():
    assert Holder.model_json_schema()["properties"]["ticket_number"]["pattern"] == f"^{TICKET_NUMBER_REGEX}$"
    # published v1 events keep their ticket fields a plain string (a stricter field would be a contract change)
    assert "pattern" not in events.CandidateConfirmedV1.model_json_schema()["properties"]["ticket_number"]
    assert sql_ticket_number_regex() == f"'^{TICKET_NUMBER_REGEX}$'"
    sql = fast_import.VERDICT + fast_import.CHECKS
    assert sql.count(sql_ticket_number_regex()) == 4 and "<TICKET_NUMBER>" not in sql
    assert result_files._PATTERNS["ticket_number"][0] is TICKET_NUMBER_PATTERN
    assert identity_domain.format_ticket_number is format_ticket_number
    assert identity_domain.is_valid_ticket_number is is_valid_ticket_number


def test_no_other_copy_of_the_pattern_outside_migrations():
    """Written migrations keep theirs as history; nothing else spells the pattern out."""
    copies = []
    for folder in ("services", "credence_common", "gateway", "credence_cli", "verifier", "deploy"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts or path.name == "tickets.py":
                continue
            if re.search(r"\{11\}\[0-9X\]", path.read_text(encoding="utf-8")):
                copies.append(str(path.relative_to(ROOT)))
    assert copies == []
