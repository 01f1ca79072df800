from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from credence_common.contracts.errors import InvalidInput
from credence_common.contracts.identity import RegisterCandidate
from credence_common.contracts.validation import control_character_fields, parse
from gateway.statuses import http_status

SENSITIVE = "11010519491231002X"


class Item(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$")
    score: int = Field(ge=0, le=100)


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sitting: str
    items: list[Item]


def parse_error(model, data) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(model, data)
    return info.value


def test_valid_data_is_parsed():
    batch = parse(Batch, {"sitting": "2026-11", "items": [{"code": "ABC", "score": 61}]})
    assert isinstance(batch, Batch)
    assert batch.items[0].score == 61


def test_an_instance_passes_through_unchanged():
    batch = Batch(sitting="2026-11", items=[])
    assert parse(Batch, batch) is batch


def test_invalid_data_raises_invalid_input_naming_the_fields():
    err = parse_error(Batch, {"items": [{"code": "abc", "score": 101}], "unexpected": 1})
    assert err.code == "invalid_input"
    assert http_status(err) == 422
    fields = {d["field"] for d in err.details}
    assert fields == {"sitting", "items.0.code", "items.0.score", "unexpected"}
    for field in fields:
        assert field in err.message
    assert all(set(d) == {"field", "message"} and d["message"] for d in err.details)


def test_input_values_are_never_echoed():
    data = {"full_name": "X", "resident_id_number": SENSITIVE + "9", "mobile": "138123456789" * 2,
            "mobile_code": "1234567", "email": "zq", "password": "", "exam_region": "Secret-Region"}
    err = parse_error(RegisterCandidate, data)
    everything = " ".join([str(err), err.message, repr(err.details), repr(err.args), repr(err.to_body())])
    for value in data.values():
        if value:
            assert value not in everything
    assert {d["field"] for d in err.details} == {"full_name", "resident_id_number", "mobile", "mobile_code",
                                                 "email", "password", "exam_region"}


@pytest.mark.parametrize("data", [None, "not an object", 42, []])
def test_a_body_that_is_not_an_object_is_reported_as_body(data):
    err = parse_error(Batch, data)
    assert err.code == "invalid_input"
    assert [d["field"] for d in err.details] == ["(body)"]
    if isinstance(data, str):
        assert data not in err.message


def test_missing_fields_are_listed():
    err = parse_error(Batch, {})
    assert sorted(d["field"] for d in err.details) == ["items", "sitting"]
    assert err.message.startswith("Invalid or missing fields:")


@pytest.mark.parametrize("value", ["\x00", "a\x1bb", "x\x7f"])
def test_control_characters_are_refused_with_the_field_named(value):
    from credence_common.contracts.identity import StaffCredentials

    with pytest.raises(InvalidInput) as info:
        parse(StaffCredentials, {"username": value, "password": "secret-pass"})
    assert info.value.code == "invalid_characters"
    assert info.value.details == [{"field": "username", "message": "contains control characters"}]
    assert value not in info.value.message


def test_control_characters_deep_in_a_batch_are_located():
    from credence_common.contracts.scoring import RecordResults

    batch = {"results": [{"ticket_number": "112600000001", "program_code": "P\x00", "sitting": "2026-11",
                          "final_score": 1}]}
    with pytest.raises(InvalidInput) as info:
        parse(RecordResults, batch)
    assert info.value.details[0]["field"] == "results.0.program_code"


def test_exactly_the_c0_controls_but_tab_newline_and_return_and_del_count_as_control_characters():
    flagged = [code for code in range(256) if control_character_fields(f"a{chr(code)}b")]
    assert flagged == [code for code in range(32) if chr(code) not in "\t\n\r"] + [127]
