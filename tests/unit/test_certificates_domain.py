from __future__ import annotations

import pytest

from services.certificates import domain


@pytest.mark.parametrize(
    "payer_kind, status",
    [("candidate", "awaiting_candidate_payment"), ("institution", "awaiting_institution_payment")],
)
def test_initial_status_depends_on_who_pays(payer_kind, status):
    assert domain.initial_status(payer_kind) == status
    assert status in domain.AWAITING_PAYMENT


@pytest.mark.parametrize("payer_kind", ["", "Candidate", "staff", "public"])
def test_initial_status_refuses_unknown_payer_kind(payer_kind):
    with pytest.raises(KeyError):
        domain.initial_status(payer_kind)


def test_certificate_fee_is_sixty_yuan_in_fen():
    assert domain.CERTIFICATE_FEE_FEN == 6000
    assert isinstance(domain.CERTIFICATE_FEE_FEN, int)


@pytest.mark.parametrize(
    "status, allowed",
    [
        ("awaiting_candidate_payment", True),
        ("awaiting_institution_payment", True),
        ("issued", False),  # never issued twice
        ("cancelled", False),
        ("", False),
    ],
)
def test_may_issue(status, allowed):
    assert domain.may_issue(status) is allowed


def test_serial_sequence_is_per_year_and_region():
    assert domain.serial_sequence_name(2026, "11") == "certificate:2026:11"
    assert domain.serial_sequence_name(2026, "11") != domain.serial_sequence_name(2027, "11")


@pytest.mark.parametrize("value", [60.5, "6000", True, -1, None])
def test_a_fee_that_is_not_whole_fen_is_refused(value):
    with pytest.raises(ValueError):
        domain.parse_fee_fen(value)


def test_a_whole_fee_is_accepted():
    assert domain.parse_fee_fen(6000) == 6000 and domain.parse_fee_fen(0) == 0
