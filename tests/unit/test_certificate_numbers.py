from __future__ import annotations

import pytest
from stdnum import luhn

from credence_common.contracts.certificate_numbers import format_certificate_number, normalise_certificate_number

SAMPLES = [(2026, "11", 1), (2026, "44", 12345678), (1999, "65", 99999999), (2031, "09", 4711)]


@pytest.mark.parametrize("year, region, serial", SAMPLES)
def test_format_lays_out_year_region_serial_and_check_digit(year, region, serial):
    number = format_certificate_number(year, region, serial)
    assert len(number) == 15 and number.isdigit()
    assert number[:4] == f"{year:04d}"
    assert number[4:6] == region
    assert number[6:14] == f"{serial:08d}"
    assert number[14] == luhn.calc_check_digit(number[:14])
    assert luhn.is_valid(number)


def test_known_certificate_number():
    assert format_certificate_number(2026, "11", 1) == "202611000000018"


@pytest.mark.parametrize("year, region, serial", SAMPLES)
def test_format_then_normalise_round_trip(year, region, serial):
    number = format_certificate_number(year, region, serial)
    assert normalise_certificate_number(number) == number


@pytest.mark.parametrize(
    "typed",
    [
        "2026 11 00000001 8",
        "2026-11-00000001-8",
        " 202611000000018 ",
        "2026 - 11 - 0000 0001 - 8",
        "2026\t11\n000000018",
    ],
)
def test_spaces_and_dashes_are_stripped(typed):
    assert normalise_certificate_number(typed) == "202611000000018"


def single_digit_typos(number: str):
    for i, original in enumerate(number):
        for digit in "0123456789":
            if digit != original:
                yield number[:i] + digit + number[i + 1:]


def adjacent_transpositions(number: str):
    for i in range(len(number) - 1):
        a, b = number[i], number[i + 1]
        if a != b and {a, b} != {"0", "9"}:  # Luhn's one blind spot: 09 <-> 90
            yield number[:i] + b + a + number[i + 2:]


@pytest.mark.parametrize("year, region, serial", SAMPLES)
def test_every_single_digit_typo_is_caught(year, region, serial):
    number = format_certificate_number(year, region, serial)
    typos = list(single_digit_typos(number))
    assert len(typos) == 15 * 9
    assert [t for t in typos if normalise_certificate_number(t) is not None] == []


@pytest.mark.parametrize("year, region, serial", SAMPLES)
def test_adjacent_transpositions_are_caught(year, region, serial):
    number = format_certificate_number(year, region, serial)
    swaps = list(adjacent_transpositions(number))
    assert swaps, "the sample must contain swappable digits"
    assert [s for s in swaps if normalise_certificate_number(s) is not None] == []


@pytest.mark.parametrize(
    "value",
    ["", None, "20261100000001", "2026110000000180", "20261100000001X", "abcdefghijklmno", "2026_11_000000018",
     "2026.11.00000001.8"],
)
def test_values_that_cannot_be_certificate_numbers_are_refused(value):
    assert normalise_certificate_number(value) is None


@pytest.mark.parametrize(
    "year, region, serial",
    [(2026, "1", 1), (2026, "111", 1), (2026, "ab", 1), (2026, "", 1), (2026, "11", 0), (2026, "11", -5),
     (2026, "11", 10**8), (999, "11", 1), (10000, "11", 1)],
)
def test_format_refuses_out_of_range_parts(year, region, serial):
    with pytest.raises(ValueError):
        format_certificate_number(year, region, serial)
