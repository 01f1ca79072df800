from __future__ import annotations

import pytest
from stdnum.cn import ric

from credence_common.contracts.errors import InvalidInput
from gateway.statuses import http_status
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
    assert http_status(err) == 422
    assert err.details == [{"field": "resident_id_number", "message": "wrong check character"}]
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
    ["13812345678", " 13812345678 ", "138 1234 5678", "138-1234-5678", "+8613812345678", "+86 138 1234 5678",
     "138.1234.5678"],
)
def test_mobile_is_normalised_to_eleven_digits(raw):
    assert domain.normalise_mobile(raw) == "13812345678"


@pytest.mark.parametrize("prefix", ["130", "138", "150", "159", "177", "186", "189", "199"])
def test_mobile_prefixes_in_use_are_accepted(prefix):
    value = prefix + "12345678"
    assert domain.normalise_mobile(value) == value


@pytest.mark.parametrize(
    "raw",
    ["", "12812345678", "10812345678", "23812345678", "1381234567", "138123456789", "+1 650 253 0000",
     "1381234567a", "01012345678"],
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

@pytest.mark.parametrize("value", ["11", "44", "65"])
def test_exam_region_is_two_digits(value):
    assert domain.check_exam_region(value) == value


@pytest.mark.parametrize("value", ["", "1", "123", "ab", "１１"])
def test_a_bad_exam_region_is_refused(value):
    with pytest.raises(InvalidInput) as info:
        domain.check_exam_region(value)
    assert info.value.code == "invalid_exam_region"


@pytest.mark.parametrize(
    "region, year, serial, body",
    [
        ("11", 2026, 1, "11260000001"),
        ("44", 2031, 1234567, "44311234567"),
        ("65", 2100, 9999999, "65009999999"),
        ("09", 2009, 42, "09090000042"),
    ],
)
def test_format_ticket_number(region, year, serial, body):
    number = domain.format_ticket_number(region, year, serial)
    assert number[:11] == body and len(number) == 12
    assert number[-1] in "0123456789X"
    assert domain.is_valid_ticket_number(number)


def test_the_ticket_check_character_catches_every_single_typo():
    number = domain.format_ticket_number("11", 2026, 1)
    assert number == "11260000001X"
    for position in range(12):
        for replacement in "0123456789X":
            if replacement != number[position]:
                typo = number[:position] + replacement + number[position + 1:]
                assert not domain.is_valid_ticket_number(typo), typo


@pytest.mark.parametrize("serial", [0, -1, 10**7, 10**9])
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


@pytest.mark.parametrize("login, kind, value", [
    ("Ann.Lee@Example.COM", "email", "ann.lee@example.com"),
    (" 138 1234 5678 ", "mobile", "13812345678"),
    ("+8613812345678", "mobile", "13812345678"),
])
def test_a_login_name_is_an_email_or_a_mobile(login, kind, value):
    assert domain.classify_login(login) == (kind, value)


@pytest.mark.parametrize("value", ["not-an-email@", "a@b", "@example.com"])
def test_a_bad_email_is_refused(value):
    with pytest.raises(InvalidInput) as info:
        domain.normalise_email(value)
    assert info.value.code == "invalid_email"


def test_a_birth_date_in_the_future_is_refused():
    from datetime import date

    future = with_check_digit("11010520990101001")
    with pytest.raises(InvalidInput):
        domain.normalise_resident_id(future, today=date(2026, 11, 23))


def test_lockout_grows_after_five_failures_and_is_capped():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert domain.lockout_until(4, now) is None
    assert domain.lockout_until(5, now) == now + timedelta(seconds=1)
    assert domain.lockout_until(8, now) == now + timedelta(seconds=8)
    assert domain.lockout_until(40, now) == now + timedelta(minutes=15)
