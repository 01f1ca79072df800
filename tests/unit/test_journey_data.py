"""deploy/journey.py draws each candidate's resident ID and mobile once per process: a second journey given the
same one failed "already_registered" (the soak of 2026-12-07, docs/reliability.md "Soak")."""

from __future__ import annotations

import random

from stdnum.cn import ric

from deploy.journey import MOBILE_PREFIXES, random_mobile, random_resident_id


def test_the_same_random_sequence_twice_still_gives_another_resident_id_and_both_are_valid():
    first = random_resident_id(random.Random(20261207))
    second = random_resident_id(random.Random(20261207))  # the same draws: the first is taken, so it draws on
    assert first != second
    assert ric.is_valid(first) and ric.is_valid(second)


def test_the_same_random_sequence_twice_still_gives_another_mobile():
    first = random_mobile(random.Random(20261207))
    second = random_mobile(random.Random(20261207))
    assert first != second
    assert first[:3] in MOBILE_PREFIXES and second[:3] in MOBILE_PREFIXES and len(second) == 11
