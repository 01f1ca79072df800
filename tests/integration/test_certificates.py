"""Certificates in a real container: one certificate per qualification, issued once on payment."""

from __future__ import annotations

import re

from credence_common.contracts.events import CandidateQualifiedV1, PaymentSucceededV1
from credence_common.events import make_envelope, utcnow
from services.certificates.service import CertificatesService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for


def qualified(result_id="res-1", candidate_id="cand-1") -> CandidateQualifiedV1:
    return CandidateQualifiedV1(result_id=result_id, candidate_id=candidate_id, ticket_number="112600000001",
                                full_name="王小明", resident_id_number_masked="110105********002X",
                                program_code="PSY-COUNSELLOR", program_name="Psychological Counsellor (Foundation)",
                                sitting="2026-11", final_score=82, qualified_at=utcnow())


def paid(certificate_id: str, amount_fen: int = 6000, order="P202611230000000001") -> PaymentSucceededV1:
    return PaymentSucceededV1(order_number=order, purpose="certificate_fee", reference_id=certificate_id,
                              due_id=f"due-{order}", candidate_id="cand-1", order_amount_fen=amount_fen,
                              payer_kind="candidate", payer_id="cand-1", amount_fen=amount_fen, provider="sandbox",
                              provider_transaction_id=f"SBX-{order}", paid_at=utcnow())


def test_qualification_creates_one_certificate_and_payment_issues_it_once(start_service, event_spy):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates")

    first = make_envelope(qualified())
    publish_event(amqp, qualified(), first)
    publish_event(amqp, qualified(), first)  # the same event redelivered
    publish_event(amqp, qualified())  # the same qualification under a new event id
    awaiting = spy.collect(1)
    assert awaiting[0]["type"] == "credence.certificate.awaiting_payment.v1"
    assert awaiting[0]["data"]["certificate_fee_fen"] == 6000 and awaiting[0]["data"]["payer_kind"] == "candidate"
    certificate_id = awaiting[0]["data"]["certificate_id"]
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(2,)], what="both event ids handled")
    assert query(db, "select status from certificates") == [("awaiting_candidate_payment",)]

    other_purpose = paid(certificate_id, order="P202611230000000009").model_copy(
        update={"purpose": "certificate_reissue"})
    publish_event(amqp, other_purpose)
    publish_event(amqp, paid("no-such-certificate", order="P202611230000000008"))
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(4,)], what="other payments handled")
    assert query(db, "select status, certificate_number from certificates") == [
        ("awaiting_candidate_payment", None)]

    # payments' fee schedule set the price (here 7000): its word that the due is paid issues the certificate
    payment = make_envelope(paid(certificate_id, amount_fen=7000))
    publish_event(amqp, paid(certificate_id, amount_fen=7000), payment)
    publish_event(amqp, paid(certificate_id, amount_fen=7000), payment)
    issued = [e for e in spy.collect(1) if e["type"] == "credence.certificate.issued.v1"]
    assert len(issued) == 1
    number = issued[0]["data"]["certificate_number"]
    assert re.fullmatch(r"\d{4}11\d{9}", number)
    assert issued[0]["data"]["holder_name"] == "王小明" and issued[0]["subject"] == number
    assert spy.drain() == []  # no second awaiting_payment, no second issued

    with rpc_proxy("certificates", config) as certificates:
        owner = {"subject": "cand-1", "role": "candidate"}
        mine = certificates.certificates_for_candidate(owner, "cand-1")["certificates"]
    assert len(mine) == 1 and mine[0]["status"] == "issued" and mine[0]["certificate_number"] == number
    assert mine[0]["certificate_fee_fen"] == 7000
    assert query(db, "select count(*) from outbox where event_type = 'credence.certificate.issued.v1'") == [(1,)]


def test_certificate_numbers_are_unique_and_sequential(start_service, event_spy):
    container, config = start_service(CertificatesService)
    amqp = config["AMQP_URI"]
    spy = event_spy("certificates", "credence.certificate.awaiting_payment.v1")
    for n in range(5):
        publish_event(amqp, qualified(result_id=f"res-{n}", candidate_id=f"cand-{n}"))
    certificate_ids = [e["data"]["certificate_id"] for e in spy.collect(5)]
    issued_spy = event_spy("certificates", "credence.certificate.issued.v1")
    for n, certificate_id in enumerate(certificate_ids):
        publish_event(amqp, paid(certificate_id, order=f"P2026112300000000{n:02d}"))
    numbers = [e["data"]["certificate_number"] for e in issued_spy.collect(5)]
    assert len(set(numbers)) == 5
    assert sorted(int(n[6:14]) for n in numbers) == [1, 2, 3, 4, 5]
