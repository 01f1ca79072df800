"""Certificates in a real container: one certificate per qualification, issued once on payment."""

from __future__ import annotations

import base64
import re
from datetime import date, timedelta

import pytest
from nameko.rpc import rpc

from credence_common.calendar import add_working_days
from credence_common.contracts.envelope import make_envelope, utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    PaymentRefundedV1,
    PaymentSucceededV1,
    QualificationWithdrawnV1,
    RefundedDue,
)
from credence_common.persistence.db import make_engine
from services.certificates.service import CertificatesService
from tests.fee_seed import seeded_fees
from tests.integration.conftest import handled, publish_event, query, rpc_proxy, signed_actor, wait_for


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


CANDIDATE = signed_actor({"subject": "cand-1", "role": "candidate"})
STAFF = signed_actor({"subject": "staff-1", "role": "staff"})
PHOTO = {"photo_reference": "photos/cand-1.jpg", "delivery_address": "北京市海淀区学院路1号 100083"}


def application(db: str, result_id: str = "res-1") -> str:
    return wait_for(lambda: query(db, "select certificate_id from certificates where result_id = :r", r=result_id),
                    what="application")[0][0]


def test_an_application_is_confirmed_by_its_candidate_and_one_payment_issues_it_once(start_service, event_spy,
        payments_fees):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates")

    first, again = make_envelope(qualified()), make_envelope(qualified())
    with handled(container, "handle_candidate_qualified", first.id, first.id, again.id):
        publish_event(amqp, qualified(), first)
        publish_event(amqp, qualified(), first)  # the same event redelivered
        publish_event(amqp, qualified(), again)  # the same qualification under a new event id
    certificate_id = application(db)
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(2,)], what="both event ids handled")
    assert query(db, "select status, payer_kind from certificates") == [("pending_confirmation", "candidate")]
    assert spy.drain(db) == []  # nothing is due before the candidate confirms

    with rpc_proxy("certificates", config) as certificates:
        mine = certificates.certificate(CANDIDATE, certificate_id)
        assert (mine["holder_name"], mine["resident_id_number_masked"]) == ("王小明", "110105********002X")
        assert mine["qualified_on"] is not None and mine["photo_reference"] is None
        with pytest.raises(Forbidden) as not_theirs:
            certificates.confirm_certificate(signed_actor({"subject": "cand-2", "role": "candidate"}),
                                             certificate_id, PHOTO)
        assert not_theirs.value.code == "not_your_certificate"
        with pytest.raises(Forbidden):
            certificates.certificate(signed_actor({"subject": "cand-2", "role": "candidate"}), certificate_id)
        with pytest.raises(InvalidInput) as no_photo:
            certificates.confirm_certificate(CANDIDATE, certificate_id, {})
        assert no_photo.value.code == "photo_required"
        confirmed = certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
        assert confirmed["status"] == "awaiting_candidate_payment" and confirmed["photo_reference"] == PHOTO[
            "photo_reference"]
        with pytest.raises(Conflict) as twice:
            certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
        assert twice.value.code == "illegal_transition"
        with pytest.raises(Conflict):
            certificates.request_correction(CANDIDATE, certificate_id, {
                "field": "holder_name", "requested_value": "王晓明", "reason": "locked now"})
    awaiting = spy.collect(1)
    assert awaiting[0]["type"] == "credence.certificate.awaiting_payment.v1"
    assert awaiting[0]["data"]["payer_kind"] == "candidate" and awaiting[0]["data"]["sequence"] == 2

    other_purpose = paid(certificate_id, order="P202611230000000009").model_copy(
        update={"purpose": "certificate_reissue"})
    publish_event(amqp, other_purpose)
    publish_event(amqp, paid("no-such-certificate", order="P202611230000000008"))
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(4,)], what="other payments handled")
    assert query(db, "select status, certificate_number from certificates") == [
        ("awaiting_candidate_payment", None)]

    # payments' fee schedule set the price (here 7000): its word that the due is paid issues the certificate
    payment = make_envelope(paid(certificate_id, amount_fen=7000))
    second_due = make_envelope(paid(certificate_id, order="P202611230000000007"))
    with handled(container, "handle_payment_succeeded", payment.id, payment.id, second_due.id):
        publish_event(amqp, paid(certificate_id, amount_fen=7000), payment)
        publish_event(amqp, paid(certificate_id, amount_fen=7000), payment)
        publish_event(amqp, paid(certificate_id, order="P202611230000000007"), second_due)  # no second issue
    events = spy.collect(4)
    issued = [e for e in events if e["type"] == "credence.certificate.issued.v1"]
    assert len(issued) == 1
    # the money that issued nothing goes back: a reissue fee with no application, an unknown certificate, the
    # second payment of an issued one
    assert sorted(e["data"]["order_number"] for e in events if e["type"].endswith("refund_requested.v1")) == [
        "P202611230000000007", "P202611230000000008", "P202611230000000009"]
    data = issued[0]["data"]
    number = data["certificate_number"]
    assert re.fullmatch(r"\d{4}11\d{9}", number)
    assert data["holder_name"] == "王小明" and issued[0]["subject"] == number and data["sequence"] == 3
    paid_day = date.fromisoformat(data["issued_on"])
    assert data["report_available_on"] == add_working_days(paid_day, 3).isoformat()
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(6,)], what="second payment handled")
    assert spy.drain(db) == []  # no second awaiting_payment, no second issued

    with rpc_proxy("certificates", config) as certificates:
        mine = certificates.certificates_for_candidate(CANDIDATE, "cand-1")["certificates"]
        timeline = certificates.certificate_history(CANDIDATE, certificate_id)["entries"]
        assert certificates.certificate_history(STAFF, certificate_id)["entries"] == timeline
    assert len(mine) == 1 and mine[0]["status"] == "issued" and mine[0]["certificate_number"] == number
    assert mine[0]["certificate_fee_fen"] == 7000 and mine[0]["version"] == 4
    assert [(e["version"], e["action"], e["status"]) for e in timeline] == [
        (1, "created", "pending_confirmation"), (2, "confirm", "awaiting_candidate_payment"), (3, "pay", "issued"),
        (4, "queued", "issued")]
    assert timeline[2]["detail"]["certificate_number"] == number
    assert query(db, "select count(*) from outbox where event_type = 'credence.certificate.issued.v1'") == [(1,)]


def test_corrections_are_asked_before_confirming_and_decided_by_staff(start_service, payments_fees):
    container, config = start_service(CertificatesService)
    publish_event(config["AMQP_URI"], qualified())
    certificate_id = application(config["DB_URI"])
    with rpc_proxy("certificates", config) as certificates:
        name_fix = certificates.request_correction(CANDIDATE, certificate_id, {
            "field": "holder_name", "requested_value": "王晓明", "reason": "晓, not 小"})
        assert name_fix["current_value"] == "王小明" and name_fix["status"] == "open"
        with pytest.raises(Conflict):
            certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)  # not while a request is open
        with pytest.raises(Conflict):
            certificates.request_correction(CANDIDATE, certificate_id, {
                "field": "photo_reference", "requested_value": "x", "reason": "one at a time"})
        with pytest.raises(InvalidInput):
            certificates.request_correction(CANDIDATE, certificate_id, {
                "field": "resident_id_number_masked", "requested_value": "x", "reason": "not correctable here"})
        with pytest.raises(Forbidden):
            certificates.decide_correction(CANDIDATE, name_fix["request_id"], {"decision": "accept", "note": "me"})
        assert [r["request_id"] for r in certificates.correction_requests(STAFF)["requests"]] == [
            name_fix["request_id"]]
        rejected = certificates.decide_correction(STAFF, name_fix["request_id"], {
            "decision": "reject", "note": "The ID card says 小"})
        assert rejected["status"] == "rejected" and rejected["decision_note"] == "The ID card says 小"
        with pytest.raises(Conflict) as again:
            certificates.decide_correction(STAFF, name_fix["request_id"], {"decision": "accept", "note": "x"})
        assert again.value.code == "correction_already_decided"
        assert certificates.certificate(CANDIDATE, certificate_id)["holder_name"] == "王小明"

        photo_fix = certificates.request_correction(CANDIDATE, certificate_id, {
            "field": "photo_reference", "requested_value": "photos/new.jpg", "reason": "a newer photo"})
        certificates.decide_correction(STAFF, photo_fix["request_id"], {"decision": "accept", "note": "fine"})
        after = certificates.certificate(CANDIDATE, certificate_id)
        assert after["photo_reference"] == "photos/new.jpg" and after["status"] == "pending_confirmation"
        with pytest.raises(InvalidInput) as no_address:
            certificates.confirm_certificate(CANDIDATE, certificate_id, {})
        assert no_address.value.code == "delivery_address_required"
        confirmed = certificates.confirm_certificate(CANDIDATE, certificate_id, {"delivery_address": "上海市1号"})
        assert confirmed["status"] == "awaiting_candidate_payment" and confirmed["photo_reference"] == "photos/new.jpg"
        actions = [e["action"] for e in certificates.certificate_history(CANDIDATE, certificate_id)["entries"]]
    assert actions == ["created", "request_correction", "decide_correction", "request_correction",
                       "decide_correction", "confirm"]


def test_an_institutions_candidate_awaits_the_institutions_payment(start_service, event_spy, payments_fees):
    container, config = start_service(CertificatesService)
    spy = event_spy("certificates", "credence.certificate.awaiting_payment.v1")
    publish_event(config["AMQP_URI"], CandidateConfirmedV1(
        candidate_id="cand-1", ticket_number="112600000001", full_name="王小明",
        resident_id_number_masked="110105********002X", exam_region="11", method="on_site", confirmed_at=utcnow(),
        institution_id="inst-7"))
    wait_for(lambda: query(config["DB_URI"], "select institution_id from candidate_payers") == [("inst-7",)],
             what="payer known")
    publish_event(config["AMQP_URI"], qualified())
    certificate_id = application(config["DB_URI"])
    with rpc_proxy("certificates", config) as certificates:
        confirmed = certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
    assert confirmed["status"] == "awaiting_institution_payment" and confirmed["payer_kind"] == "institution"
    event = spy.collect(1)[0]["data"]
    assert (event["payer_kind"], event["payer_id"], event["candidate_id"]) == ("institution", "inst-7", "cand-1")


def test_staff_revoke_an_issued_certificate_and_subscribers_see_issue_then_revoke(start_service, event_spy,
        payments_fees):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.#")
    publish_event(amqp, qualified())
    certificate_id = application(db)
    with rpc_proxy("certificates", config) as certificates:
        with pytest.raises(Conflict):
            certificates.revoke_certificate(STAFF, certificate_id, {"reason": "not issued yet"})
        certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
        publish_event(amqp, paid(certificate_id))
        wait_for(lambda: query(db, "select status from certificates") == [("issued",)], what="issued")
        with pytest.raises(Forbidden):
            certificates.revoke_certificate(CANDIDATE, certificate_id, {"reason": "mine"})
        with pytest.raises(InvalidInput):
            certificates.revoke_certificate(STAFF, certificate_id, {"reason": ""})
        revoked = certificates.revoke_certificate(STAFF, certificate_id, {"reason": "Obtained by fraud"})
        assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "Obtained by fraud"
        with pytest.raises(Conflict):
            certificates.revoke_certificate(STAFF, certificate_id, {"reason": "twice"})
    events = spy.collect(3)
    assert [(e["type"].split(".")[2], e["data"]["sequence"]) for e in events] == [
        ("awaiting_payment", 2), ("issued", 3), ("revoked", 5)]
    assert {e["data"]["certificate_id"] for e in events} == {certificate_id}
    assert events[2]["data"]["reason"] == "Obtained by fraud"


def test_certificate_numbers_are_unique_and_sequential(start_service, event_spy, payments_fees):
    container, config = start_service(CertificatesService)
    amqp = config["AMQP_URI"]
    for n in range(5):
        publish_event(amqp, qualified(result_id=f"res-{n}", candidate_id=f"cand-{n}"))
    certificate_ids = [application(config["DB_URI"], f"res-{n}") for n in range(5)]
    with rpc_proxy("certificates", config) as certificates:
        for n, certificate_id in enumerate(certificate_ids):
            certificates.confirm_certificate(signed_actor({"subject": f"cand-{n}", "role": "candidate"}),
                                             certificate_id, PHOTO)
    issued_spy = event_spy("certificates", "credence.certificate.issued.v1")
    for n, certificate_id in enumerate(certificate_ids):
        publish_event(amqp, paid(certificate_id, order=f"P2026112300000000{n:02d}"))
    numbers = [e["data"]["certificate_number"] for e in issued_spy.collect(5)]
    assert len(set(numbers)) == 5
    assert sorted(int(n[6:14]) for n in numbers) == [1, 2, 3, 4, 5]


def issued_certificate(config, spy=None) -> str:
    """A certificate taken through confirmation and payment; returns its id."""
    publish_event(config["AMQP_URI"], qualified())
    certificate_id = application(config["DB_URI"])
    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
    publish_event(config["AMQP_URI"], paid(certificate_id))
    wait_for(lambda: query(config["DB_URI"], "select status from certificates") == [("issued",)], what="issued")
    return certificate_id


def replacement_paid(application: dict, order="P202611230000000077", fee=10000) -> PaymentSucceededV1:
    return paid(application["application_id"], amount_fen=fee, order=order).model_copy(
        update={"purpose": f"certificate_{application['kind']}"})


def test_an_unpaid_replacement_is_withdrawn_by_its_candidate_or_cancelled_by_staff(start_service, event_spy,
        payments_fees):
    """Issue #19 item 8: an unpaid application no longer blocks the certificate for ever. The candidate withdraws
    it, or staff cancel it; payments is told the fee is no longer due (fee_no_longer_due.v1), another application
    may follow, a paid one is only staff's to cancel (refunded), and a payment that arrives for a withdrawn one
    is refunded rather than used."""
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.#")
    certificate_id = issued_certificate(config)
    assert [e["type"] for e in spy.collect(2)] == ["credence.certificate.awaiting_payment.v1",
                                                   "credence.certificate.issued.v1"]
    other = signed_actor({"subject": "cand-2", "role": "candidate"})
    with rpc_proxy("certificates", config) as certificates:
        first = certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "Lost"})
        with pytest.raises(NotFound):  # somebody else's application does not exist for them
            certificates.withdraw_replacement(other, first["application_id"])
        with pytest.raises(Forbidden):
            certificates.withdraw_replacement(STAFF, first["application_id"])
        withdrawn = certificates.withdraw_replacement(CANDIDATE, first["application_id"])
        assert (withdrawn["status"], withdrawn["cancel_reason"]) == ("cancelled", "Withdrawn by the candidate.")
        with pytest.raises(Conflict) as twice:
            certificates.withdraw_replacement(CANDIDATE, first["application_id"])
        assert twice.value.code == "illegal_transition"

        second = certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "Torn"})
        cancelled = certificates.cancel_replacement(STAFF, second["application_id"], {"reason": "Apply in person"})
        assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "Apply in person")

        third = certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "Wet"})
        publish_event(amqp, replacement_paid(third, order="P202612070000000003"))
        wait_for(lambda: query(db, "select status from replacement_applications where application_id = :a",
                               a=third["application_id"]) == [("pending",)], what="the third is paid")
        with pytest.raises(Conflict) as paid_already:
            certificates.withdraw_replacement(CANDIDATE, third["application_id"])
        assert paid_already.value.code == "application_paid"
        certificates.cancel_replacement(STAFF, third["application_id"], {"reason": "Duplicate"})
        # the candidate paid the withdrawn one at the provider before withdrawing: the money goes back
        publish_event(amqp, replacement_paid(first, order="P202612070000000001"))
        timeline = [e["action"] for e in certificates.certificate_history(CANDIDATE, certificate_id)["entries"]]
        assert certificates.certificate(CANDIDATE, certificate_id)["status"] == "issued"
    assert timeline[-6:] == ["reissue_requested", "reissue_withdrawn", "reissue_requested", "reissue_cancelled",
                             "reissue_requested", "reissue_cancelled"]
    events = [(e["type"].split(".")[2], e["data"].get("reason") or "", e["data"].get("reference_id") or
               e["data"].get("application_id")) for e in spy.collect(7)]
    ids = [first["application_id"], second["application_id"], third["application_id"]]
    assert events == [
        ("replacement_awaiting_payment", "", ids[0]), ("fee_no_longer_due", "withdrawn_by_candidate", ids[0]),
        ("replacement_awaiting_payment", "", ids[1]), ("fee_no_longer_due", "cancelled_by_staff", ids[1]),
        ("replacement_awaiting_payment", "", ids[2]), ("refund_requested", "reissue application cancelled: "
                                                       "Duplicate", ids[2]),
        ("refund_requested", "Paid for an application no longer awaiting payment", ids[0])]
    assert spy.drain(db) == []


def test_reissue_supersedes_the_old_certificate_and_subscribers_see_issue_reissue_revoke(start_service, event_spy,
        payments_fees):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.#")
    old_id = issued_certificate(config)
    with rpc_proxy("certificates", config) as certificates:
        with pytest.raises(InvalidInput) as no_video:
            certificates.apply_for_replacement(CANDIDATE, old_id, {"kind": "correction", "reason": "typo"})
        assert no_video.value.code == "identity_video_required"
        with pytest.raises(Forbidden):
            certificates.apply_for_replacement(signed_actor({"subject": "cand-2", "role": "candidate"}), old_id,
                                               {"kind": "reissue", "reason": "lost"})
        reissue = certificates.apply_for_replacement(CANDIDATE, old_id, {"kind": "reissue", "reason": "Lost it"})
        assert reissue["status"] == "awaiting_payment" and reissue["fee_fen"] == 10000
        with pytest.raises(Conflict) as twice:
            certificates.apply_for_replacement(CANDIDATE, old_id, {"kind": "reissue", "reason": "again"})
        assert twice.value.code == "replacement_in_progress"
        application_id = reissue["application_id"]
        with pytest.raises(Conflict):
            certificates.start_replacement(STAFF, application_id)  # not paid yet
        publish_event(amqp, replacement_paid(reissue))
        wait_for(lambda: query(db, "select status from replacement_applications") == [("pending",)], what="paid")
        with pytest.raises(Conflict):
            certificates.complete_replacement(STAFF, application_id)  # not processing yet
        with pytest.raises(Forbidden):
            certificates.start_replacement(CANDIDATE, application_id)
        assert certificates.start_replacement(STAFF, application_id)["status"] == "processing"
        done = certificates.complete_replacement(STAFF, application_id)
        assert done["status"] == "completed" and done["new_certificate_id"]
        with pytest.raises(Conflict):
            certificates.cancel_replacement(STAFF, application_id, {"reason": "too late"})
        mine = {c["certificate_id"]: c for c in certificates.certificates_for_candidate(CANDIDATE, "cand-1")[
            "certificates"]}
        assert mine[old_id]["status"] == "superseded" and mine[done["new_certificate_id"]]["status"] == "issued"
        with pytest.raises(Conflict):  # a superseded certificate cannot be replaced or revoked again
            certificates.apply_for_replacement(CANDIDATE, old_id, {"kind": "reissue", "reason": "lost again"})
        certificates.revoke_certificate(STAFF, done["new_certificate_id"], {"reason": "Obtained by fraud"})
        with pytest.raises(Conflict):  # nor can a revoked one
            certificates.apply_for_replacement(CANDIDATE, done["new_certificate_id"],
                                               {"kind": "reissue", "reason": "lost"})
        old_timeline = [e["action"] for e in certificates.certificate_history(CANDIDATE, old_id)["entries"]]
    assert old_timeline == ["created", "confirm", "pay", "queued", "reissue_requested", "supersede"]
    events = spy.collect(6)
    seen = [(e["type"].split(".")[2], e["data"]["certificate_id"] == old_id, e["data"].get("sequence")) for e in events]
    # the application has its own event type: the certificate stays issued while it waits for its fee
    assert seen == [("awaiting_payment", True, 2), ("issued", True, 3), ("replacement_awaiting_payment", True, None),
                    ("issued", False, 1), ("superseded", True, 6), ("revoked", False, 3)]
    assert spy.drain(db) == []
    superseded = next(e for e in events if e["type"].endswith("superseded.v1"))["data"]
    new_issued = [e for e in events if e["type"].endswith("issued.v1")][1]["data"]
    assert superseded["superseded_by_certificate_number"] == new_issued["certificate_number"]
    assert new_issued["certificate_number"] != superseded["certificate_number"]


def test_a_cancelled_correction_is_refunded_through_payments(start_service, event_spy):
    from services.payments.service import PaymentsService
    from tests.integration.test_payments import SIGNING_SEED, dues_of
    from tests.integration.test_payments import candidate as payer

    container, config = start_service(CertificatesService)
    payments_container, payments_config = start_service(PaymentsService, AMQP_URI=config["AMQP_URI"])
    refunds_spy = event_spy("payments", "credence.payments.payment_refunded.v1")
    assert SIGNING_SEED
    certificate_id = issued_certificate(config)
    with rpc_proxy("certificates", config) as certificates:
        correction = certificates.apply_for_replacement(CANDIDATE, certificate_id, {
            "kind": "correction", "reason": "My name is printed wrong", "identity_video_reference": "videos/1.mp4",
            "corrected_holder_name": "王晓明"})
    due = next(d for d in dues_of(payments_config, payer(), "candidate", "cand-1", 2)
               if d["purpose"] == "certificate_correction")
    assert due["amount_fen"] == 20000 and due["reference_id"] == correction["application_id"]
    with rpc_proxy("payments", payments_config) as payments:
        order = payments.create_order(payer(), {"due_ids": [due["due_id"]]}, "corr")
        assert payments.sandbox_pay(payer(), order["order_number"], {})["acknowledgement"]["status"] == "paid"
    wait_for(lambda: query(config["DB_URI"], "select status from replacement_applications") == [("pending",)],
             what="the application is paid")
    with rpc_proxy("certificates", config) as certificates:
        cancelled = certificates.cancel_replacement(STAFF, correction["application_id"], {
            "reason": "The video does not show your face clearly; please record it again"})
        assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"].startswith("The video")
        assert certificates.replacement_applications(CANDIDATE)["applications"][0]["cancel_reason"] == \
            cancelled["cancel_reason"]
        # the candidate may submit again
        again = certificates.apply_for_replacement(CANDIDATE, certificate_id, {
            "kind": "correction", "reason": "New video", "identity_video_reference": "videos/2.mp4",
            "corrected_holder_name": "王晓明"})
        assert again["status"] == "awaiting_payment"
    refunded = refunds_spy.collect(1, timeout=30)
    assert [(e["data"]["order_number"], e["data"]["amount_fen"], e["data"]["fully_refunded"]) for e in refunded] == [
        (order["order_number"], 20000, True)]
    assert refunds_spy.drain(payments_config["DB_URI"]) == []
    assert query(payments_config["DB_URI"], "select status, refunded_fen from payment_orders") == [("refunded", 20000)]


def test_a_fee_changed_in_payments_is_what_a_new_certificate_and_application_show_and_their_events_carry(
        start_service, event_spy):
    """Issue #21 item 1: payments owns the fees. Certificates keeps no price of its own: it asks payments' fee
    schedule when it creates a certificate or a replacement application, so a fee staff change with set_fee is
    the amount the new certificate shows, its awaiting_payment.v1 carries and payments' due charges."""
    from services.payments.service import PaymentsService
    from tests.integration.test_payments import candidate as payer
    from tests.integration.test_payments import dues_of

    container, config = start_service(CertificatesService)
    _payments, payments_config = start_service(PaymentsService, AMQP_URI=config["AMQP_URI"])
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.#")
    with rpc_proxy("payments", payments_config) as payments:
        for code, fen in (("certificate_fee", 7300), ("certificate_reissue", 12100)):
            assert payments.set_fee(STAFF, code, {"description": code, "amount_fen": fen})["amount_fen"] == fen

    publish_event(amqp, qualified())
    certificate_id = application(db)
    with rpc_proxy("certificates", config) as certificates:
        assert certificates.certificate(CANDIDATE, certificate_id)["certificate_fee_fen"] == 7300
        certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
    [awaiting] = spy.collect(1)
    assert (awaiting["type"], awaiting["data"]["certificate_fee_fen"]) == (
        "credence.certificate.awaiting_payment.v1", 7300)
    [due] = dues_of(payments_config, payer(), "candidate", "cand-1", 1)
    assert (due["purpose"], due["amount_fen"]) == ("certificate_fee", 7300)

    publish_event(amqp, paid(certificate_id, amount_fen=7300))
    wait_for(lambda: query(db, "select status from certificates") == [("issued",)], what="issued")
    with rpc_proxy("certificates", config) as certificates:
        reissue = certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "Lost"})
    assert reissue["fee_fen"] == 12100
    issued, replacement = spy.collect(2)  # the paid certificate issued, then the reissue awaiting its fee
    assert (issued["type"], replacement["type"]) == ("credence.certificate.issued.v1",
                                                     "credence.certificate.replacement_awaiting_payment.v1")
    assert replacement["data"]["fee_fen"] == 12100
    dues = dues_of(payments_config, payer(), "candidate", "cand-1", 2)
    assert {d["purpose"]: d["amount_fen"] for d in dues}["certificate_reissue"] == 12100


def test_a_qualification_waits_for_payments_fee_schedule_and_is_not_lost(start_service, container_factory):
    """Payments not answering: certificates writes nothing for the qualification, the reliable handler retries it
    and, the tries used up, keeps it in the dead-letter queue; replayed once payments answers, it is applied at
    payments' price. A candidate's replacement application meanwhile gets 503."""
    from credence_common.bus import dead_letters

    container, config = start_service(CertificatesService, EVENT_MAX_ATTEMPTS=3, EVENT_RETRY_BASE_SECONDS=0.05,
                                      RPC_TIMEOUT_SECONDS=1)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    publish_event(amqp, qualified())
    wait_for(lambda: len(dead_letters.list_dead_letters(amqp, "certificates")) == 1, what="tries used up")
    [letter] = dead_letters.list_dead_letters(amqp, "certificates")
    assert letter.attempts == 3 and "payments" in letter.reason and letter.event_type == CandidateQualifiedV1.event_type
    assert query(db, "select count(*) from certificates") == [(0,)]
    assert query(db, "select count(*) from processed_events") == [(0,)]  # nothing half-written

    fees = dict(seeded_fees(), certificate_fee=6400)

    class Payments:  # payments is back, answering its schedule
        name = "payments"

        @rpc
        def fee_schedule(self) -> dict:
            return {"fees": [{"fee_code": code, "description": code, "amount_fen": fen,
                              "updated_at": utcnow().isoformat()} for code, fen in fees.items()]}

    payments = container_factory(Payments, {"AMQP_URI": amqp})
    payments.start()
    assert dead_letters.replay(amqp, "certificates") == 1
    certificate_id = application(db)
    assert query(db, "select certificate_fee_fen from certificates") == [(6400,)]

    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
    publish_event(amqp, paid(certificate_id, amount_fen=6400))
    wait_for(lambda: query(db, "select status from certificates") == [("issued",)], what="issued")
    payments.stop()  # payments away again: nobody answers within RPC_TIMEOUT_SECONDS
    with rpc_proxy("certificates", config) as certificates:
        with pytest.raises(ServiceUnavailable) as away:
            certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "Lost"})
        assert away.value.code in ("service_timeout", "service_unavailable")
        assert certificates.replacement_applications(CANDIDATE)["applications"] == []


def test_issued_certificates_are_batched_printed_shipped_and_delivered(start_service, payments_fees):
    container, config = start_service(CertificatesService)
    db = config["DB_URI"]
    for n in range(2):
        publish_event(config["AMQP_URI"], qualified(result_id=f"res-{n}", candidate_id=f"cand-{n}"))
    ids = [application(db, f"res-{n}") for n in range(2)]
    with rpc_proxy("certificates", config) as certificates:
        for n, certificate_id in enumerate(ids):
            certificates.confirm_certificate(signed_actor({"subject": f"cand-{n}", "role": "candidate"}),
                                             certificate_id, {
                "photo_reference": f"photos/{n}.jpg", "delivery_address": f"北京市海淀区{n}号"})
        with pytest.raises(Conflict) as unpaid:
            certificates.ship_certificate(STAFF, ids[0], {"courier": "EMS", "tracking_number": "EA123456789CN"})
        assert unpaid.value.code == "illegal_transition"  # mail before paid
        for n, certificate_id in enumerate(ids):
            publish_event(config["AMQP_URI"], paid(certificate_id, order=f"P20261123000000010{n}"))
        wait_for(lambda: query(db, "select count(*) from certificates where delivery_status = 'queued'") == [(2,)],
                 what="both queued")
        batch = certificates.production_batches(STAFF)["batches"][0]
        assert (batch["status"], batch["certificate_count"]) == ("open", 2)
        first = certificates.certificate(STAFF, ids[0])
        assert first["batch_id"] == batch["batch_id"] and first["ship_by"] > first["issued_at"][:10]
        with pytest.raises(Conflict):
            certificates.ship_certificate(STAFF, ids[0], {"courier": "EMS", "tracking_number": "EA123456789CN"})

        certificates.revoke_certificate(STAFF, ids[1], {"reason": "Obtained by fraud"})  # left out of printing
        closed = certificates.close_batch(STAFF, batch["batch_id"])
        assert closed["status"] == "closed"
        with pytest.raises(Conflict) as again:
            certificates.close_batch(STAFF, batch["batch_id"])
        assert again.value.code == "batch_closed"
        with pytest.raises(Forbidden):
            certificates.batch_csv(CANDIDATE, batch["batch_id"])
        exported = certificates.batch_csv(STAFF, batch["batch_id"])
        lines = exported.lstrip("\ufeff").splitlines()
        assert lines[0].startswith("certificate_id,certificate_number,holder_name,resident_id_number_masked")
        assert len(lines) == 2 and "北京市海淀区0号" in lines[1] and "photos/0.jpg" in lines[1]
        pdf = base64.b64decode(certificates.batch_proof_pdf(STAFF, batch["batch_id"]))
        assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf

        with pytest.raises(InvalidInput):
            certificates.ship_certificate(STAFF, ids[0], {"courier": "EMS", "tracking_number": "x y"})
        with pytest.raises(Conflict):
            certificates.mark_delivered(STAFF, ids[0])  # not shipped yet
        shipped = certificates.ship_certificate(STAFF, ids[0], {"courier": "EMS", "tracking_number": "EA123456789CN"})
        assert (shipped["delivery_status"], shipped["tracking_number"]) == ("shipped", "EA123456789CN")
        with pytest.raises(Conflict):
            certificates.ship_certificate(STAFF, ids[1], {"courier": "EMS", "tracking_number": "EA000000000CN"})
        assert certificates.mark_delivered(STAFF, ids[0])["delivery_status"] == "delivered"
        timeline = [e["action"] for e in certificates.certificate_history(
            signed_actor({"subject": "cand-0", "role": "candidate"}), ids[0])["entries"]]
        assert timeline == ["created", "confirm", "pay", "queued", "printing", "shipped", "delivered"]
        assert certificates.overdue_shipments(STAFF)["certificates"] == []

        # a newly issued certificate opens the next batch
        publish_event(config["AMQP_URI"], qualified(result_id="res-9", candidate_id="cand-9"))
        late = application(db, "res-9")
        certificates.confirm_certificate(signed_actor({"subject": "cand-9", "role": "candidate"}), late, PHOTO)
        publish_event(config["AMQP_URI"], paid(late, order="P202611230000000199"))
        wait_for(lambda: len(certificates.production_batches(STAFF)["batches"]) == 2, what="a second batch")
        newest = certificates.production_batches(STAFF)["batches"][0]
        assert (newest["batch_number"], newest["status"], newest["certificate_count"]) == (
            batch["batch_number"] + 1, "open", 1)
    # promised dates in the past: listed as overdue
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE certificates SET ship_by = '2026-01-05' WHERE result_id = 'res-9'")
    finally:
        engine.dispose()
    with rpc_proxy("certificates", config) as certificates:
        overdue = certificates.overdue_shipments(STAFF)["certificates"]
    assert [c["certificate_id"] for c in overdue] == [late]


def test_revoking_voids_open_replacements_and_money_that_arrives_later_goes_back(start_service, event_spy,
        payments_fees):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    refunds = event_spy("certificates", "credence.certificate.refund_requested.v1")
    certificate_id = issued_certificate(config)
    with rpc_proxy("certificates", config) as certificates:
        reissue = certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "lost"})
        with pytest.raises(InvalidInput) as long_name:
            certificates.apply_for_replacement(CANDIDATE, certificate_id, {"kind": "reissue", "reason": "x",
                                                                           "corrected_holder_name": "王"})
        assert long_name.value.code == "correction_only"
        certificates.revoke_certificate(STAFF, certificate_id, {"reason": "Obtained by fraud"})
        void = certificates.replacement_applications(CANDIDATE)["applications"][0]
        assert (void["status"], void["cancel_reason"]) == ("cancelled", "The certificate was revoked.")
    assert refunds.drain(db) == []  # it was not paid: nothing to give back
    late = replacement_paid(reissue, order="P202611230000000555")
    publish_event(amqp, late)
    publish_event(amqp, paid(certificate_id, order="P202611230000000556"))  # the fee paid twice, say
    asked = refunds.collect(2)
    assert sorted((e["data"]["order_number"], e["data"]["amount_fen"]) for e in asked) == [
        ("P202611230000000555", 10000), ("P202611230000000556", 6000)]
    publish_event(amqp, late)  # redelivered under a new id: the same refund request id
    again = refunds.collect(1)
    assert again[0]["data"]["refund_request_id"] == next(
        e for e in asked if e["data"]["order_number"] == "P202611230000000555")["data"]["refund_request_id"]
    assert query(db, "select status from certificates") == [("revoked",)]


def withdrawn_qualification(result_id="res-1", review_id="rev-1") -> QualificationWithdrawnV1:
    return QualificationWithdrawnV1(result_id=result_id, candidate_id="cand-1", program_code="PSY-COUNSELLOR",
                                    corrected_result_id=result_id, review_id=review_id, withdrawn_at=utcnow())


def refunded(certificate_id: str, order="P202611230000000001", whole=True) -> PaymentRefundedV1:
    return PaymentRefundedV1(refund_number=f"R-{order}-{whole}", order_number=order, reference_id=certificate_id,
                             payer_kind="candidate", payer_id="cand-1", amount_fen=6000 if whole else 1000,
                             order_refunded_fen=6000 if whole else 1000, fully_refunded=whole, reason="asked",
                             provider="sandbox", refunded_at=utcnow(),
                             fully_refunded_dues=[RefundedDue(purpose="certificate_fee", reference_id=certificate_id)]
                             if whole else [])


def test_a_recheck_that_removes_the_qualification_withdraws_an_application_and_queues_an_issued_certificate(
        start_service, event_spy, payments_fees):
    """Issue #19 item 2: before issue the application is withdrawn (and its fee no longer due); an issued
    certificate goes on staff's revocation queue with a deadline; staff revoke it (reason result_corrected) or
    keep it, once; a redelivered withdrawal opens no second case."""
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.#")
    # an application waiting for its fee, and one still to be confirmed
    publish_event(amqp, qualified("res-due"))
    publish_event(amqp, qualified("res-new"))
    due_id = application(db, "res-due")
    application(db, "res-new")
    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, due_id, PHOTO)
    spy.collect(1)  # its awaiting_payment
    publish_event(amqp, withdrawn_qualification("res-due"))
    publish_event(amqp, withdrawn_qualification("res-new"))
    wait_for(lambda: query(db, "select count(*) from certificates where status = 'withdrawn'") == [(2,)],
             what="both withdrawn")
    no_longer_due = spy.collect(1)[0]
    assert no_longer_due["type"] == "credence.certificate.fee_no_longer_due.v1"
    assert (no_longer_due["data"]["reference_id"], no_longer_due["data"]["purpose"],
            no_longer_due["data"]["reason"]) == (due_id, "certificate_fee", "result_corrected")
    # the candidate had paid at the provider meanwhile: nothing is issued and the money goes back
    publish_event(amqp, paid(due_id, order="P202612070000000009"))
    refund = spy.collect(1)[0]
    assert refund["type"] == "credence.certificate.refund_requested.v1" and refund["data"]["reference_id"] == due_id

    # an issued certificate: a case for staff, not an instant revocation
    publish_event(amqp, qualified("res-1"))
    issued_id = application(db, "res-1")
    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, issued_id, PHOTO)
    publish_event(amqp, paid(issued_id))
    wait_for(lambda: query(db, "select status from certificates where certificate_id = :c", c=issued_id)
             == [("issued",)], what="issued")
    spy.collect(2)
    envelope = make_envelope(withdrawn_qualification("res-1"))
    told_again = make_envelope(withdrawn_qualification("res-1"))
    with handled(container, "handle_qualification_withdrawn", envelope.id, envelope.id, told_again.id):
        publish_event(amqp, withdrawn_qualification("res-1"), envelope)
        publish_event(amqp, withdrawn_qualification("res-1"), envelope)  # redelivered
        publish_event(amqp, withdrawn_qualification("res-1"), told_again)  # told again under another id
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(9,)], what="every event handled")
    with rpc_proxy("certificates", config) as certificates:
        [case] = certificates.revocation_cases(STAFF, "open")["cases"]
        assert (case["certificate_id"], case["reason_code"], case["review_id"], case["overdue"]) == (
            issued_id, "result_corrected", "rev-1", False)
        assert case["decide_by"] == (utcnow().date() + timedelta(days=10)).isoformat()
        assert certificates.certificate(CANDIDATE, issued_id)["status"] == "issued"
        assert certificates.revocation_cases(STAFF, None, True)["cases"] == []  # not overdue yet
        with pytest.raises(Forbidden):
            certificates.revocation_cases(CANDIDATE)
        with pytest.raises(Forbidden):
            certificates.decide_revocation_case(CANDIDATE, case["case_id"], {"decision": "revoke", "note": "x"})
        with pytest.raises(InvalidInput):
            certificates.decide_revocation_case(STAFF, case["case_id"], {"decision": "maybe", "note": "x"})
        with pytest.raises(NotFound):
            certificates.decide_revocation_case(STAFF, "no-such-case", {"decision": "revoke", "note": "x"})
        decided = certificates.decide_revocation_case(STAFF, case["case_id"], {
            "decision": "revoke", "note": "The drill score was corrected to a fail on re-check."})
        assert (decided["status"], decided["decided_by"]) == ("revoked", "staff:staff-1")
        with pytest.raises(Conflict) as twice:
            certificates.decide_revocation_case(STAFF, case["case_id"], {"decision": "keep", "note": "changed"})
        assert twice.value.code == "case_decided"
        revoked = certificates.certificate(CANDIDATE, issued_id)
        assert (revoked["status"], revoked["revocation_code"]) == ("revoked", "result_corrected")
        assert revoked["revocation_reason"] == "The drill score was corrected to a fail on re-check."
    event = spy.collect(1)[0]
    assert event["type"] == "credence.certificate.revoked.v1" and event["data"]["reason_code"] == "result_corrected"
    assert spy.drain(db) == []


def test_automatic_revocation_on_correction_and_a_full_refund_of_the_fee_revokes(start_service, event_spy,
        payments_fees):
    """``REVOKE_ON_RESULT_CORRECTION=automatic`` revokes at once (the case is recorded, decided); a certificate
    fee refunded in full revokes the certificate it paid for, a partial refund or a refund of another order
    does not."""
    container, config = start_service(CertificatesService, REVOKE_ON_RESULT_CORRECTION="automatic")
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("certificates", "credence.certificate.revoked.v1")
    corrected = issued_certificate(config)
    publish_event(amqp, withdrawn_qualification("res-1"))
    revoked = spy.collect(1)[0]["data"]
    assert (revoked["certificate_id"], revoked["reason_code"]) == (corrected, "result_corrected")
    with rpc_proxy("certificates", config) as certificates:
        [case] = certificates.revocation_cases(STAFF)["cases"]
        assert (case["status"], case["decided_by"]) == ("revoked", "automatic")

    publish_event(amqp, qualified("res-2"))
    refunded_id = application(db, "res-2")
    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, refunded_id, PHOTO)
    publish_event(amqp, paid(refunded_id, order="P202612070000000002"))
    wait_for(lambda: query(db, "select status from certificates where certificate_id = :c", c=refunded_id)
             == [("issued",)], what="issued")
    refunds = [refunded(refunded_id, order="P202612070000000002", whole=False),  # goodwill: stays
               refunded(refunded_id, order="P202611230000000099"),  # another order's money
               refunded(refunded_id, order="P202612070000000002")]  # the fee itself
    envelopes = [make_envelope(refund) for refund in refunds]
    with handled(container, "handle_payment_refunded", *(envelope.id for envelope in envelopes)):
        for refund, envelope in zip(refunds, envelopes, strict=True):
            publish_event(amqp, refund, envelope)
    revoked = spy.collect(1)[0]["data"]
    assert (revoked["certificate_id"], revoked["reason_code"]) == (refunded_id, "fee_refunded")
    with rpc_proxy("certificates", config) as certificates:
        mine = certificates.certificate(CANDIDATE, refunded_id)
    assert mine["status"] == "revoked" and mine["revocation_reason"].startswith("The certificate fee was refunded")
    assert spy.drain(db) == []


def test_withdrawals_that_cross_their_qualification_and_qualifications_gained_again(start_service, event_spy,
        payments_fees):
    """A withdrawal that arrives before its qualification is kept, and the qualification then makes no
    certificate; a qualification gained again after its withdrawal (a course-based program keeps its id) makes a
    new one; an open case follows its certificate to the reissue that replaced it, and a revocation by other means
    closes it."""
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    issued_id = issued_certificate(config)
    earlier = utcnow() - timedelta(minutes=5)
    publish_event(amqp, withdrawn_qualification("res-late"))  # crossed: the qualification is still on its way
    wait_for(lambda: query(db, "select qualification_id from withdrawn_qualifications") == [("res-late",)],
             what="the withdrawal kept")
    publish_event(amqp, qualified("res-late").model_copy(update={"qualified_at": earlier}))
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(4,)], what="both handled")
    assert query(db, "select count(*) from certificates where result_id = 'res-late'") == [(0,)]
    # gained again later: a new certificate
    publish_event(amqp, qualified("res-late"))
    wait_for(lambda: query(db, "select count(*) from certificates where result_id = 'res-late'") == [(1,)],
             what="a certificate for the qualification gained again")

    # issued, withdrawn into a case, then reissued before staff decide: the decision revokes the reissue
    with rpc_proxy("certificates", config) as certificates:
        applied = certificates.apply_for_replacement(CANDIDATE, issued_id, {"kind": "reissue", "reason": "Lost"})
        publish_event(amqp, replacement_paid(applied, order="P202612070000000004"))
        wait_for(lambda: query(db, "select status from replacement_applications") == [("pending",)], what="paid")
        publish_event(amqp, withdrawn_qualification("res-1", "rev-9"))
        [case] = wait_for(lambda: certificates.revocation_cases(STAFF, "open")["cases"], what="the case")
        certificates.start_replacement(STAFF, applied["application_id"])
        done = certificates.complete_replacement(STAFF, applied["application_id"])
        with pytest.raises(InvalidInput) as typo:
            certificates.revocation_cases(STAFF, "opne")
        assert typo.value.code == "invalid_status"
        decided = certificates.decide_revocation_case(STAFF, case["case_id"], {"decision": "revoke",
                                                                                "note": "Re-check: failed."})
        assert decided["status"] == "revoked"
        assert certificates.certificate(CANDIDATE, done["new_certificate_id"])["status"] == "revoked"
        assert certificates.certificate(CANDIDATE, issued_id)["status"] == "superseded"

        # a case closed by a revocation made otherwise (staff, or a refund)
        publish_event(amqp, qualified("res-3"))
        third = application(db, "res-3")
        certificates.confirm_certificate(CANDIDATE, third, PHOTO)
        publish_event(amqp, paid(third, order="P202612070000000005"))
        wait_for(lambda: certificates.certificate(CANDIDATE, third)["status"] == "issued", what="issued")
        publish_event(amqp, withdrawn_qualification("res-3", "rev-10"))
        [case] = wait_for(lambda: certificates.revocation_cases(STAFF, "open")["cases"], what="the third's case")
        certificates.revoke_certificate(STAFF, third, {"reason": "Obtained by fraud"})
        assert certificates.revocation_cases(STAFF, "open")["cases"] == []
        [closed] = [c for c in certificates.revocation_cases(STAFF, "revoked")["cases"]
                    if c["case_id"] == case["case_id"]]
        assert closed["note"] == "Obtained by fraud"
