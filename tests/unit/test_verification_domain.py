from __future__ import annotations

import pytest

from services.verification.domain import name_key


@pytest.mark.parametrize(
    "left, right",
    [
        ("ＡＮＮ　ＬＥＥ", "Ann Lee"),  # full-width letters and ideographic space
        ("Ann  Lee", "ann lee"),
        ("  Ann Lee  ", "ANN LEE"),
        ("Ann\tLee", "ann lee"),
        ("张三", "张三"),
        ("ｚｈａｎｇ san", "Zhang San"),
        ("STRASSE", "straße"),  # case folding, not just lower()
    ],
)
def test_equivalent_names_share_a_key(left, right):
    assert name_key(left) == name_key(right)


@pytest.mark.parametrize(
    "left, right",
    [("Ann Lee", "Ann Li"), ("张三", "张三丰"), ("AnnLee", "Ann Lee"), ("张三", "李四")],
)
def test_different_names_have_different_keys(left, right):
    assert name_key(left) != name_key(right)


def test_key_is_normalised_text():
    assert name_key("ＡＮＮ　　ＬＥＥ") == "ann lee"
    assert name_key("") == ""
    assert name_key(None) == ""
