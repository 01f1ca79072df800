from __future__ import annotations

import pytest
from stdnum.cn import ric

from credence_common.errors import InvalidInput
from services.identity import domain

VALID_ID = "11010519491231002X"


def with_check_digit(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


# --- resident ID ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, expected",
    [
        (VALID_ID, VALID_ID),
        ("11010519491231002x", VALID_ID),  # lower-case x accepted and upper-cased
        ("  11010519491231002x \n", VALID_ID),
        (with_check_digit("44030419900307123"), with_check_digit("44030419900307123")),
        (with_check_digit("32010220000229456"), with_check_digit("32010220000229456")),  # leap day
    ],
)
def test_valid_resident_id_is_normalised(raw, expected):
    assert domain.normalise_resident_id(raw) == expected


def test_generated_ids_with_a_digit_check_digit_are_accepted():
    value = with_check_digit("11010519900101001")
    assert value[-1] in "0123456789X"
    assert domain.normalise_resident_id(value) == value


@pytest.mark.parametrize("wrong", [d for d in "0123456789X" if d != "X"])
def test_wrong_check_digit_is_refused(wrong):
    value = VALID_ID[:17] + wrong
    with pytest.raises(InvalidInput) as info:
        domain.normalise_resident_id(value)
    err = info.value
    assert err.code == "invalid_resident_id_number"
    assert err.http_status == 422
    assert err.details == [{"field": "resident_id_number", "message": "not a valid resident ID number"}]
    assert value not in str(err) and value not in err.message  # personal data is never echoed


@pytest.mark.parametrize(
    "body17",
    [
        "11010519491331002",  # month 13
        "11010519490230002",  # 30 February
        "11010519490001002",  # month 00
        "11010519490100002",  # day 00
        "11010519010229002",  # 29 February 1901 (not a leap year)
    ],
)
def test_impossible_birth_date_is_refused_even_with_a_correct_check_digit(body17):
    value = with_check_digit(body17)
    with pytest.raises(InvalidInput) as info:
        domain.normalise_resident_id(value)
    assert info.value.code == "invalid_resident_id_number"


@pytest.mark.parametrize(
    "value",
    ["", "11010519491231002", "11010519491231002X1", "1101051949123100XX", "A1010519491231002X", "x" * 18],
)
def test_malformed_resident_id_is_refused(value):
    with pytest.raises(InvalidInput) as info:
        domain.normalise_resident_id(value)
    assert info.value.code == "invalid_resident_id_number"


# --- mobile -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw",
    ["13812345678", " 13812345678 ", "138 1234 5678", "138-1234-5678", "138 - 1234 - 5678"],
)
def test_mobile_is_normalised_to_eleven_digits(raw):
    assert domain.normalise_mobile(raw) == "13812345678"


@pytest.mark.parametrize("second_digit", "3456789")
def test_mobile_second_digit_three_to_nine_is_accepted(second_digit):
    value = "1" + second_digit + "012345678"
    assert domain.normalise_mobile(value) == value


@pytest.mark.parametrize(
    "raw",
    ["", "12812345678", "10812345678", "23812345678", "1381234567", "138123456789", "+8613812345678",
     "1381234567a", "138.1234.5678"],
)
def test_invalid_mobile_is_refused(raw):
    with pytest.raises(InvalidInput) as info:
        domain.normalise_mobile(raw)
    err = info.value
    assert err.code == "invalid_mobile"
    assert err.details == [{"field": "mobile", "message": "not a valid mobile number"}]
    if raw:
        assert raw not in err.message


# --- full name --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("张三", "张三"),
        ("张三丰", "张三丰"),
        ("  张   三丰 ", "张 三丰"),
        ("Ann  Lee", "Ann Lee"),
        ("Ann\tLee", "Ann Lee"),
        ("阿卜杜·热合曼", "阿卜杜·热合曼"),
        ("李" * 40, "李" * 40),
    ],
)
def test_valid_full_name_is_normalised(raw, expected):
    assert domain.normalise_full_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "张", "  张  ", "李" * 41, "张3", "张３", "3张", "<script>", "张<三", 'Ann "Lee"', "O'Brien", "a;b",
     "张{三}", "a/b", "a\\b", "a`b"],
)
def test_invalid_full_name_is_refused(raw):
    with pytest.raises(InvalidInput) as info:
        domain.normalise_full_name(raw)
    err = info.value
    assert err.code == "invalid_full_name"
    assert err.details == [{"field": "full_name", "message": "not a valid name"}]


# --- exam region and ticket number ------------------------------------------------------------------

@pytest.mark.parametrize("resident_id, region", [(VALID_ID, "11"), (with_check_digit("44030419900307123"), "44")])
def test_default_exam_region_is_the_home_province(resident_id, region):
    assert domain.default_exam_region(resident_id) == region


@pytest.mark.parametrize(
    "region, year, serial, expected",
    [
        ("11", 2026, 1, "112600000001"),
        ("44", 2031, 12345678, "443112345678"),
        ("65", 2100, 99999999, "650099999999"),
        ("09", 2009, 42, "090900000042"),
    ],
)
def test_format_ticket_number(region, year, serial, expected):
    number = domain.format_ticket_number(region, year, serial)
    assert number == expected
    assert len(number) == 12 and number.isdigit()


@pytest.mark.parametrize("serial", [0, -1, 10**8, 10**9])
def test_ticket_serial_out_of_range_is_refused(serial):
    with pytest.raises(ValueError, match="serial"):
        domain.format_ticket_number("11", 2026, serial)


@pytest.mark.parametrize("region", ["", "1", "123", "ab", "1a", " 1"])
def test_ticket_region_must_be_two_digits(region):
    with pytest.raises(ValueError, match="exam_region"):
        domain.format_ticket_number(region, 2026, 1)


def test_ticket_sequence_is_per_region_and_year():
    assert domain.ticket_sequence_name("11", 2026) == "ticket:11:2026"
    assert domain.ticket_sequence_name("11", 2026) != domain.ticket_sequence_name("11", 2027)
    assert domain.ticket_sequence_name("11", 2026) != domain.ticket_sequence_name("12", 2026)


@pytest.mark.parametrize("value", ["138１２３４５６７８", "13812345678\n0"])
def test_full_width_or_trailing_digits_are_not_a_mobile_number(value):
    with pytest.raises(InvalidInput):
        domain.normalise_mobile(value)


def test_a_full_width_resident_id_is_refused():
    with pytest.raises(InvalidInput):
        domain.normalise_resident_id("１１０１０５１９４９１２３１００２Ｘ")


def test_a_full_width_exam_region_cannot_make_a_ticket_number():
    with pytest.raises(ValueError):
        domain.format_ticket_number("１１", 2026, 1)
