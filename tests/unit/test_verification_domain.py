from __future__ import annotations

import pytest

from services.verification.domain import answers_truthfully, name_key, truncated_client


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


# --- the per-number limit (issue #17, finding 3) ---------------------------------------------------------


@pytest.mark.parametrize("name_matches", [True, False])
@pytest.mark.parametrize("caller_failed", [True, False])
def test_under_the_limit_every_check_gets_its_answer(name_matches, caller_failed):
    assert answers_truthfully(19, caller_failed, name_matches, 20)


def test_over_the_limit_only_the_right_name_from_a_caller_who_has_not_guessed_gets_its_answer():
    assert answers_truthfully(20, False, True, 20)  # the holder's verifier, during somebody else's guessing
    assert not answers_truthfully(20, False, False, 20)  # another wrong name: refused
    assert not answers_truthfully(500, True, True, 20)  # a caller who guessed wrong does not get to try again


def test_no_limit_answers_everything():
    assert answers_truthfully(10_000, True, False, 0)


# --- retention of the check log (issue #17, finding 7) ---------------------------------------------------

@pytest.mark.parametrize(
    "client, kept",
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("127.0.0.1", "127.0.0.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),  # an IPv4 caller seen through an IPv6 socket
        ("203.0.113.0/24", "203.0.113.0/24"),  # truncating again changes nothing
        ("2001:db8:abcd::/48", "2001:db8:abcd::/48"),
        ("10.0.0.0/8", "10.0.0.0/8"),  # already coarser
        ("", ""),
        ("unknown", ""),  # not an address: nothing of it is kept
        (" 203.0.113.77 ", "203.0.113.0/24"),
    ],
)
def test_an_old_address_keeps_only_its_network(client, kept):
    assert truncated_client(client) == kept
