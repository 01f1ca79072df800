from __future__ import annotations

import pytest

from credence_common.masking import mask_mobile, mask_name, mask_resident_id


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
