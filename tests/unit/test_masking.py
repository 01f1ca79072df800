from __future__ import annotations

import pytest

from credence_common.security.masking import mask_mobile, mask_name, mask_resident_id, mask_resident_id_public


@pytest.mark.parametrize(
    "value, masked",
    [
        ("110105194912310021", "110105********0021"),
        ("11010519491231002X", "110105********002X"),
        (" 11010519491231002X ", "110105********002X"),
        ("12345678901", "123456*8901"),
        ("123456789", "*********"),
        ("12345678", "********"),
        ("123", "***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_resident_id(value, masked):
    assert mask_resident_id(value) == masked


def test_masked_resident_id_hides_the_birth_date_and_keeps_length():
    value = "11010519491231002X"
    masked = mask_resident_id(value)
    assert "19491231" not in masked
    assert len(masked) == len(value)
    assert masked.count("*") == 8


@pytest.mark.parametrize(
    "value, masked",
    [
        ("110105194912310021", "**************0021"),
        ("11010519491231002X", "**************002X"),
        (" 11010519491231002X ", "**************002X"),
        ("110105********002X", "**************002X"),  # the holder's form, stored by verification, re-masked
        ("**************002X", "**************002X"),
        ("123456789", "*****6789"),
        ("12345678", "********"),
        ("123", "***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_resident_id_public(value, masked):
    assert mask_resident_id_public(value) == masked


def test_a_public_id_number_with_a_known_birthday_still_leaves_ten_digits_unknown():
    masked = mask_resident_id_public("110105194912310021")
    assert len(masked) == 18 and masked[:-4] == "*" * 14
    assert "110105" not in masked and "19491231" not in masked


@pytest.mark.parametrize(
    "value, masked",
    [
        ("13812345678", "138****5678"),
        (" 13812345678 ", "138****5678"),
        ("12345678", "123*5678"),
        ("1234567", "*******"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_mobile(value, masked):
    assert mask_mobile(value) == masked


@pytest.mark.parametrize(
    "value, masked",
    [
        ("李四", "李*"),  # 2 characters: family name only
        ("张三丰", "张*丰"),  # 3 characters: first and last
        ("欧阳娜娜", "欧**娜"),
        ("Ann Lee", "A*****e"),
        ("张", "张"),  # 1 character: nothing to hide behind
        ("", ""),
        ("   ", ""),
        (None, ""),
        (" 李四 ", "李*"),
    ],
)
def test_mask_name(value, masked):
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    "address, masked",
    [
        ("203.0.113.77", "203.0.113.0/24"),
        (" 203.0.113.77 ", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),  # an IPv4 caller seen through an IPv6 socket
        ("203.0.113.0/24", "203.0.113.0/24"),  # the check log's address after 30 days: shown the same
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("", ""),
        (None, ""),
        ("testclient", ""),  # not an address: nothing of it is shown
    ],
)
def test_mask_ip_address_shows_the_network_never_the_address(address, masked):
    from credence_common.security.masking import mask_ip_address

    assert mask_ip_address(address) == masked
