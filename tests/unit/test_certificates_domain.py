from __future__ import annotations

import pytest

from services.certificates import domain


@pytest.mark.parametrize(
    "payer_kind, status",
    [("candidate", "awaiting_candidate_payment"), ("institution", "awaiting_institution_payment")],
)
def test_confirming_makes_the_fee_due_from_whoever_pays(payer_kind, status):
    assert domain.next_status(domain.PENDING_CONFIRMATION, "confirm", payer_kind) == status
    assert status in domain.AWAITING_PAYMENT


@pytest.mark.parametrize("payer_kind", ["", "Candidate", "staff", "public"])
def test_an_unknown_payer_kind_is_refused(payer_kind):
    with pytest.raises(KeyError):
        domain.awaiting_status(payer_kind)


def test_a_candidate_of_an_institution_is_paid_for_by_it():
    assert domain.payer_for("cand-1", "inst-9") == domain.Payer("institution", "inst-9")
    assert domain.payer_for("cand-1", None) == domain.Payer("candidate", "cand-1")
    assert domain.payer_for("cand-1", "") == domain.Payer("candidate", "cand-1")


LEGAL = {
    ("pending_confirmation", "request_correction"): "correction_requested",
    ("correction_requested", "decide_correction"): "pending_confirmation",
    ("pending_confirmation", "confirm"): "awaiting_candidate_payment",
    ("awaiting_candidate_payment", "pay"): "issued",
    ("awaiting_institution_payment", "pay"): "issued",
    ("issued", "revoke"): "revoked",
    ("issued", "supersede"): "superseded",
    # a re-check took the qualification away before issue
    ("pending_confirmation", "withdraw"): "withdrawn",
    ("correction_requested", "withdraw"): "withdrawn",
    ("awaiting_candidate_payment", "withdraw"): "withdrawn",
    ("awaiting_institution_payment", "withdraw"): "withdrawn",
}


@pytest.mark.parametrize("status", domain.STATUSES)
@pytest.mark.parametrize("action", list(domain.TRANSITIONS))
def test_every_transition_is_either_legal_or_refused(status, action):
    """The whole table: each (status, action) pair leads where LEGAL says, or is refused."""
    if (status, action) in LEGAL:
        assert domain.next_status(status, action, "candidate") == LEGAL[(status, action)]
    else:
        with pytest.raises(domain.IllegalTransition) as refused:
            domain.next_status(status, action, "candidate")
        assert status.replace("_", " ") in str(refused.value)


def test_nothing_leaves_a_revoked_or_superseded_certificate():
    for status in (domain.REVOKED, domain.SUPERSEDED):
        for action in domain.TRANSITIONS:
            with pytest.raises(domain.IllegalTransition):
                domain.next_status(status, action)


def test_serial_sequence_is_per_year_and_region():
    assert domain.serial_sequence_name(2026, "11") == "certificate:2026:11"
    assert domain.serial_sequence_name(2026, "11") != domain.serial_sequence_name(2027, "11")


DELIVERY_LEGAL = {("none", "queue"): "queued", ("queued", "print"): "printing", ("printing", "ship"): "shipped",
                  ("shipped", "deliver"): "delivered"}


@pytest.mark.parametrize("delivery", ["none", "queued", "printing", "shipped", "delivered"])
@pytest.mark.parametrize("action", list(domain.DELIVERY_TRANSITIONS))
def test_delivery_steps_follow_in_order_and_only_for_issued_certificates(delivery, action):
    if (delivery, action) in DELIVERY_LEGAL:
        assert domain.next_delivery_status(delivery, action, domain.ISSUED) == DELIVERY_LEGAL[(delivery, action)]
    else:
        with pytest.raises(domain.IllegalTransition):
            domain.next_delivery_status(delivery, action, domain.ISSUED)
    for not_issued in (domain.AWAITING_CANDIDATE_PAYMENT, domain.REVOKED, domain.SUPERSEDED):
        with pytest.raises(domain.IllegalTransition):  # mail before paid, or a withdrawn certificate
            domain.next_delivery_status(delivery, action, not_issued)


APPLICATION_LEGAL = {("awaiting_payment", "pay"): "pending", ("pending", "start"): "processing",
                     ("processing", "complete"): "completed", ("pending", "cancel"): "cancelled",
                     ("awaiting_payment", "withdraw"): "cancelled", ("awaiting_payment", "cancel"): "cancelled",
                     ("processing", "cancel"): "cancelled", ("awaiting_payment", "void"): "cancelled",
                     ("pending", "void"): "cancelled", ("processing", "void"): "cancelled"}


@pytest.mark.parametrize("status", ["awaiting_payment", "pending", "processing", "completed", "cancelled"])
@pytest.mark.parametrize("action", list(domain.APPLICATION_TRANSITIONS))
def test_replacement_applications_move_only_forward(status, action):
    if (status, action) in APPLICATION_LEGAL:
        assert domain.next_application_status(status, action) == APPLICATION_LEGAL[(status, action)]
    else:
        with pytest.raises(domain.IllegalTransition) as refused:
            domain.next_application_status(status, action)
        assert "replacement application" in str(refused.value)


@pytest.mark.parametrize("value, written", [("=HYPERLINK(1)", "'=HYPERLINK(1)"), ("+86", "'+86"), ("-1", "'-1"),
                                            ("@x", "'@x"), ("王小明", "王小明"), ("", "")])
def test_printer_csv_cells_never_run_as_spreadsheet_formulas(value, written):
    from services.certificates.adapters.printer_csv import _cell

    assert _cell(value) == written


@pytest.mark.parametrize("status", ["open", "revoked", "kept"])
@pytest.mark.parametrize("decision", ["revoke", "keep"])
def test_a_revocation_case_is_decided_once(status, decision):
    if status == "open":
        assert domain.decide_case(status, decision) == {"revoke": "revoked", "keep": "kept"}[decision]
    else:
        with pytest.raises(domain.IllegalTransition):
            domain.decide_case(status, decision)
