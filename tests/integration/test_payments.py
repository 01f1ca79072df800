"""Payments in a real container on SQLite and PostgreSQL: fee schedule, dues from certificate events, orders
(candidates and institutions), signed sandbox notifications credited once, refunds, reconciliation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from credence_common.calendar import business_day
from credence_common.contracts.envelope import make_envelope, utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from credence_common.contracts.events import (
    CertificateAwaitingPaymentV1,
    FeeNoLongerDueV1,
    ReplacementAwaitingPaymentV1,
)
from credence_common.persistence.db import make_engine
from services.payments import domain, usecases
from services.payments.adapters.sandbox import SandboxProvider
from services.payments.adapters.sandbox_bank import SandboxBank, sandbox_db_uri
from services.payments.service import PaymentsService
from tests.integration.conftest import handled, publish_event, query, rpc_proxy, signed_actor, wait_for

MERCHANT = "1900000001"
SIGNING_SEED = "test-sandbox-signing-key"
STAFF = signed_actor({"subject": "staff-1", "role": "staff"})
CERTIFICATES = signed_actor({"subject": "certificates", "role": "service"})


def candidate(candidate_id="cand-1") -> dict:
    return signed_actor({"subject": candidate_id, "role": "candidate"})


def institution(institution_id="inst-1", username=None) -> dict:
    """An institution's staff account as the gateway vouches for it: the account, and the institution it pays as."""
    return signed_actor({"subject": f"institution:{username or 'clerk-of-' + institution_id}", "role": "institution",
                         "institution_id": institution_id})


def awaiting(certificate_id="cert-1", candidate_id="cand-1", payer_kind="candidate", payer_id=None):
    return CertificateAwaitingPaymentV1(certificate_id=certificate_id, candidate_id=candidate_id, payer_kind=payer_kind,
                                        payer_id=payer_id or candidate_id, certificate_fee_fen=6000,
                                        program_code="PSY-COUNSELLOR", created_at=utcnow())


@pytest.fixture
def payments_service(start_service):
    container, config = start_service(PaymentsService)
    bank = SandboxBank(sandbox_db_uri(None, config["DB_URI"]), domain.load_private_key(SIGNING_SEED))
    yield config, bank
    bank.close_engine()


def dues_of(config, actor, kind, payer_id, count):
    with rpc_proxy("payments", config) as payments:
        return wait_for(lambda: (lambda d: d if len(d) == count else None)(
            payments.dues_for_payer(actor, kind, payer_id)["dues"]), what=f"{count} dues")


def signed(bank: SandboxBank, trade, now=None):
    body, headers = bank.notification(trade, now=now)
    return body.decode(), headers


def test_fee_schedule_is_data_staff_change_it_and_dues_take_its_price(payments_service):
    config, _ = payments_service
    with rpc_proxy("payments", config) as payments:
        fees = {f["fee_code"]: f["amount_fen"] for f in payments.fee_schedule()["fees"]}
        assert fees == {"certificate_fee": 6000, "certificate_reissue": 10000, "certificate_correction": 20000}
        with pytest.raises(Forbidden):
            payments.set_fee(candidate(), "exam_fee_written", {"description": "Written exam", "amount_fen": 3000})
        with pytest.raises(InvalidInput):
            payments.set_fee(STAFF, "exam_fee_written", {"description": "Written exam", "amount_fen": 30.5})
        with pytest.raises(InvalidInput):
            payments.set_fee(STAFF, "Bad Code!", {"description": "x", "amount_fen": 1})
        added = payments.set_fee(STAFF, "exam_fee_written", {"description": "Written exam, per course",
                                                            "amount_fen": 3000})
        assert added["amount_fen"] == 3000
        due = payments.open_due(CERTIFICATES, {"purpose": "exam_fee_written", "reference_id": "enrol-1",
                                               "candidate_id": "cand-9", "payer_kind": "candidate",
                                               "payer_id": "cand-9"})
        assert due["amount_fen"] == 3000 and due["status"] == "open"
        again = payments.open_due(CERTIFICATES, {"purpose": "exam_fee_written", "reference_id": "enrol-1",
                                                 "candidate_id": "cand-9", "payer_kind": "candidate",
                                                 "payer_id": "cand-9"})
        assert again["due_id"] == due["due_id"]
        payments.set_fee(STAFF, "exam_fee_written", {"description": "Written exam, per course", "amount_fen": 3500})
        assert payments.dues_for_payer(STAFF, "candidate", "cand-9")["dues"][0]["amount_fen"] == 3000
        with pytest.raises(NotFound) as unknown:
            payments.open_due(STAFF, {"purpose": "no_such_fee", "reference_id": "x", "candidate_id": "c",
                                      "payer_kind": "candidate", "payer_id": "c"})
        assert unknown.value.code == "unknown_fee"
        with pytest.raises(Forbidden):
            payments.open_due(candidate(), {"purpose": "certificate_fee", "reference_id": "x", "candidate_id": "c",
                                            "payer_kind": "candidate", "payer_id": "c"})


def test_a_candidate_pays_once_through_a_signed_notification(payments_service, event_spy):
    config, bank = payments_service
    db = config["DB_URI"]
    spy = event_spy("payments")
    envelope = make_envelope(awaiting())
    publish_event(config["AMQP_URI"], awaiting(), envelope)
    publish_event(config["AMQP_URI"], awaiting(), envelope)  # redelivered: still one due
    due = dues_of(config, candidate(), "candidate", "cand-1", 1)[0]
    assert due["amount_fen"] == 6000 and due["purpose"] == "certificate_fee"

    with rpc_proxy("payments", config) as payments:
        with pytest.raises(Forbidden):
            payments.dues_for_payer(candidate("cand-2"), "candidate", "cand-1")
        request = {"due_ids": [due["due_id"]], "invoice": {"title": "王小明"}}
        order = payments.create_order(candidate(), request, "key-1")
        assert order["status"] == "created" and order["amount_fen"] == 6000 and order["currency"] == "CNY"
        assert order["pay_url"].endswith(f"/{order['order_number']}/payment")
        assert payments.create_order(candidate(), request, "key-1")["order_number"] == order["order_number"]
        assert "key-1" not in repr(query(db, "select * from payment_orders"))  # only its digest is kept
        # a double click without a key: the due is in an open order, which is returned
        assert payments.create_order(candidate(), request, None)["order_number"] == order["order_number"]
        with pytest.raises(Conflict) as reused:
            payments.create_order(candidate(), {"due_ids": ["other"]}, "key-1")
        assert reused.value.code == "idempotency_key_reused"
        with pytest.raises(NotFound):
            payments.order(candidate("cand-2"), order["order_number"])
        assert query(db, "select count(*) from payment_orders") == [(1,)]

        trade = bank.pay(MERCHANT, order["order_number"])
        body, headers = signed(bank, trade)

        forger = domain.load_private_key("somebody else's key")
        forged_headers = {**headers, "Sandbox-Signature": domain.sign(forger, domain.signing_message(
            headers["Sandbox-Timestamp"], headers["Sandbox-Nonce"], body.encode()))}
        with pytest.raises(Unauthorized) as forged:
            payments.handle_notification("sandbox", body, forged_headers)
        assert forged.value.code == "invalid_signature"
        tampered = body.replace('"total":6000', '"total":600')
        with pytest.raises(Unauthorized):
            payments.handle_notification("sandbox", tampered, headers)
        with pytest.raises(Unauthorized):
            payments.handle_notification("sandbox", body, {k: v for k, v in headers.items()
                                                            if k != "Sandbox-Signature"})
        stale_body, stale_headers = signed(bank, trade, now=datetime.now(UTC) - timedelta(minutes=10))
        with pytest.raises(Unauthorized) as stale:
            payments.handle_notification("sandbox", stale_body, stale_headers)
        assert stale.value.code == "stale_notification"
        assert query(db, "select status from payment_orders") == [("created",)]
        assert query(db, "select count(*) from outbox") == [(0,)]

        ack = payments.handle_notification("sandbox", body, headers)
        assert ack == {"order_number": order["order_number"], "status": "paid", "duplicate": False}
        # the very same bytes again (the provider did not get our answer, or someone replays them): already
        # applied, so answered as done (a provider retries anything else for a day) and nothing changes
        assert payments.handle_notification("sandbox", body, headers) == {**ack, "duplicate": True}
        # the same nonce on another body, signed all the same, is no copy of what was applied: refused
        other_body = body.replace(json.loads(body)["id"], "another-notification-id")
        other_headers = {**headers, "Sandbox-Signature": domain.sign(
            domain.load_private_key(SIGNING_SEED),
            domain.signing_message(headers["Sandbox-Timestamp"], headers["Sandbox-Nonce"], other_body.encode()))}
        with pytest.raises(Conflict) as replay:
            payments.handle_notification("sandbox", other_body, other_headers)
        assert replay.value.code == "replayed_notification"
        retry_body, retry_headers = signed(bank, trade)  # the provider retries: signed afresh
        assert payments.handle_notification("sandbox", retry_body, retry_headers)["duplicate"] is True
        with pytest.raises(Conflict) as paid_due:
            payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, "key-2")
        assert paid_due.value.code == "due_already_paid"

        staff_view = payments.order(STAFF, order["order_number"])
        assert (staff_view["invoice"]["title"], staff_view["invoice"]["tax_number"]) == ("王小明", None)
        assert staff_view["provider_transaction_id"] == trade.transaction_id
        # the payer sees the invoice it asked for (one per order, numbered once paid), not the provider's side
        payers_view = payments.order(candidate(), order["order_number"])
        # made out to the candidate's own name: personal data, shown masked (staff, who issue it, see it whole)
        assert payers_view["invoice"] == {**staff_view["invoice"], "invoice_number": "F" + order["order_number"][1:],
                                          "amount_fen": 6000, "refunded_fen": 0, "title": "王*明"}
        assert "provider_transaction_id" not in payers_view and "payer_id" not in payers_view
        codes = [i["code"] for i in payments.incidents(STAFF)["incidents"]]
        assert sorted(codes) == sorted(["invalid_signature", "invalid_signature", "invalid_signature",
                                        "stale_notification", "replayed_notification"])
        assert payments.incidents(STAFF, True)["incidents"] == []

    events = spy.collect(1)
    assert events[0]["type"] == "credence.payments.payment_succeeded.v1"
    data = events[0]["data"]
    assert (data["reference_id"], data["due_id"], data["amount_fen"], data["order_amount_fen"]) == (
        "cert-1", due["due_id"], 6000, 6000)
    assert spy.drain(db) == []
    assert query(db, "select count(*) from provider_payments") == [(1,)]


def test_the_sandbox_provider_offers_no_jsapi_payment(payments_service):
    config, _bank = payments_service
    publish_event(config["AMQP_URI"], awaiting("cert-1"))
    due = dues_of(config, STAFF, "candidate", "cand-1", 1)[0]
    with rpc_proxy("payments", config) as payments:
        with pytest.raises(InvalidInput) as refused:
            payments.create_order(candidate(), {"due_ids": [due["due_id"]], "method": "jsapi",
                                                "payer_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}, None)
        assert refused.value.code == "payment_method_unavailable"
        assert payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, None)["pay_method"] == "native"


def test_wrong_amounts_and_payments_for_closed_orders_are_refused_recorded_and_flagged(payments_service):
    config, bank = payments_service
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], awaiting("cert-1"))
    publish_event(config["AMQP_URI"], awaiting("cert-2"))
    dues = dues_of(config, candidate(), "candidate", "cand-1", 2)
    with rpc_proxy("payments", config) as payments:
        first = payments.create_order(candidate(), {"due_ids": [dues[0]["due_id"]]}, "a")
        short = payments.sandbox_pay(candidate(), first["order_number"], {"amount_fen": 1})
        assert short["refused"]["code"] == "amount_mismatch" and short["acknowledgement"] is None
        assert payments.order(candidate(), first["order_number"])["status"] == "created"

        second = payments.create_order(candidate(), {"due_ids": [dues[1]["due_id"]]}, "b")
        closed = payments.close_order(candidate(), second["order_number"])
        assert closed["status"] == "closed" and closed["ended_at"]
        assert payments.dues_for_payer(candidate(), "candidate", "cand-1")["dues"][1]["open_order_number"] is None
        with pytest.raises(Conflict):
            payments.sandbox_pay(candidate(), second["order_number"], {})  # the provider refuses a closed order
        late = bank.pay(MERCHANT, second["order_number"], even_if_closed=True)  # ... unless it raced the close
        body, headers = signed(bank, late)
        with pytest.raises(Conflict) as refused:
            payments.handle_notification("sandbox", body, headers)
        assert refused.value.code == "order_closed"
        assert payments.order(candidate(), second["order_number"])["status"] == "closed"

        flagged = payments.incidents(STAFF, True)["incidents"]
        assert {(i["code"], i["order_number"]) for i in flagged} == {
            ("amount_mismatch", first["order_number"]), ("order_closed", second["order_number"])}
        assert next(i for i in flagged if i["code"] == "order_closed")["provider_transaction_id"] == \
            late.transaction_id
        # the due of the closed order can be paid in a new order
        third = payments.create_order(candidate(), {"due_ids": [dues[1]["due_id"]]}, "c")
        assert third["order_number"] != second["order_number"]
    assert query(db, "select count(*) from provider_payments") == [(0,)]
    assert query(db, "select count(*) from outbox") == [(0,)]


def test_an_institution_pays_for_many_candidates_in_one_order_and_only_its_own(payments_service, event_spy):
    config, _ = payments_service
    spy = event_spy("payments")
    for cert, cand, inst in (("c-1", "s-1", "inst-1"), ("c-2", "s-2", "inst-1"), ("c-3", "s-3", "inst-2")):
        publish_event(config["AMQP_URI"], awaiting(cert, cand, "institution", inst))
    mine = dues_of(config, institution(), "institution", "inst-1", 2)
    theirs = dues_of(config, institution("inst-2"), "institution", "inst-2", 1)
    with rpc_proxy("payments", config) as payments:
        with pytest.raises(Forbidden) as not_theirs:
            payments.create_order(institution(), {"due_ids": [mine[0]["due_id"], theirs[0]["due_id"]]}, "k")
        assert not_theirs.value.code == "not_your_candidate"
        with pytest.raises(Forbidden):
            payments.create_order(candidate("s-1"), {"due_ids": [mine[0]["due_id"]]}, "k")  # institution pays it
        with pytest.raises(InvalidInput):
            bad_tax_number = {"title": "某培训学校", "tax_number": "91110000600037341X"}
            payments.create_order(institution(), {"due_ids": [mine[0]["due_id"]], "invoice": bad_tax_number}, "k")
        order = payments.create_order(institution(), {
            "due_ids": [d["due_id"] for d in mine],
            "invoice": {"title": "北京某职业培训学校", "tax_number": "91110000600037341l"}}, "k")
        assert order["amount_fen"] == 12000 and len(order["items"]) == 2
        assert {i["candidate_id"] for i in order["items"]} == {"s-1", "s-2"}
        assert payments.order(STAFF, order["order_number"])["invoice"]["tax_number"] == "91110000600037341L"
        # the institution pays as the institution, whichever of its accounts signs in; the account itself is no payer
        colleague = institution(username="bursar")
        assert payments.order(colleague, order["order_number"])["order_number"] == order["order_number"]
        with pytest.raises(Forbidden):
            payments.dues_for_payer(colleague, "institution", "institution:bursar")
        with pytest.raises(NotFound):  # another institution's order is not there
            payments.order(institution("inst-2"), order["order_number"])
        unnamed = signed_actor({"subject": "institution:clerk-of-inst-1", "role": "institution"})
        for refused_call in (lambda: payments.dues_for_payer(unnamed, "institution", "inst-1"),
                             lambda: payments.create_order(unnamed, {"due_ids": [mine[0]["due_id"]]}, "u"),
                             lambda: payments.order(unnamed, order["order_number"])):
            with pytest.raises(Forbidden) as not_named:
                refused_call()
            assert not_named.value.code == "institution_not_named"
        ack = payments.sandbox_pay(colleague, order["order_number"], {})["acknowledgement"]
        assert ack["status"] == "paid"
        assert [o["status"] for o in payments.orders_for_payer(institution(), "institution", "inst-1")["orders"]] \
            == ["paid"]
        refusals = payments.incidents(STAFF)["incidents"]
        assert [i["code"] for i in refusals].count("not_your_candidate") == 1
        assert next(i for i in refusals if i["code"] == "not_your_candidate")["actor"] == "institution:clerk-of-inst-1"
    events = spy.collect(2)
    assert sorted(e["data"]["reference_id"] for e in events) == ["c-1", "c-2"]
    assert {e["data"]["payer_id"] for e in events} == {"inst-1"}
    assert {e["data"]["order_amount_fen"] for e in events} == {12000}
    assert spy.drain(config["DB_URI"]) == []
    with rpc_proxy("payments", config) as payments:
        # one invoice for the whole order, numbered when it was paid, seen by its payer
        invoice = payments.order(institution(), order["order_number"])["invoice"]
        assert invoice["invoice_number"] == "F" + order["order_number"][1:] and invoice["amount_fen"] == 12000
        assert (invoice["title"], invoice["tax_number"]) == ("北京某职业培训学校", "91110000600037341L")
        assert invoice["issued_at"] is not None and invoice["refunded_fen"] == 0
        # one student's fee out of the order: never a due the order did not pay, never more than that due
        refund = {"order_number": order["order_number"], "reason": "student withdrew", "request_key": "r-1"}
        for due_id, amount, code in ((theirs[0]["due_id"], 6000, "due_not_in_order"),
                                     (mine[0]["due_id"], 6001, "refund_exceeds_due")):
            with pytest.raises(InvalidInput) as wrong:
                payments.request_refund(STAFF, {**refund, "due_id": due_id, "amount_fen": amount})
            assert wrong.value.code == code
        done = payments.request_refund(STAFF, {**refund, "due_id": mine[0]["due_id"], "amount_fen": 6000})
        assert (done["status"], done["due_id"], done["reference_id"]) == ("succeeded", mine[0]["due_id"],
                                                                          mine[0]["reference_id"])
        with pytest.raises(InvalidInput) as again:
            payments.request_refund(STAFF, {**refund, "request_key": "r-2", "due_id": mine[0]["due_id"],
                                            "amount_fen": 1})
        assert again.value.code == "refund_exceeds_due"
        after = payments.order(institution(), order["order_number"])
        assert (after["status"], after["refunded_fen"], after["invoice"]["refunded_fen"]) == (
            "partially_refunded", 6000, 6000)
        refunded = {d["due_id"]: d["refunded_fen"] for d in payments.dues_for_payer(
            institution(), "institution", "inst-1")["dues"]}
        assert refunded == {mine[0]["due_id"]: 6000, mine[1]["due_id"]: 0}
    refunded_event = spy.collect(1)[0]["data"]
    assert (refunded_event["reference_id"], refunded_event["amount_fen"]) == (mine[0]["reference_id"], 6000)
    assert query(config["DB_URI"], "select count(*) from refunds") == [(1,)]
    # certificates asks back the other student's fee (its certificate, c-2): the refund names that due, and a
    # second ask for more than that due is refused and flagged, not taken out of the first student's share
    from credence_common.contracts.events import CertificateRefundRequestedV1

    for request_id, amount in (("void:c-2", 6000), ("void:c-2:again", 6000)):
        publish_event(config["AMQP_URI"], CertificateRefundRequestedV1(
            refund_request_id=request_id, certificate_id="c-2", candidate_id="s-2", reference_id="c-2",
            order_number=order["order_number"], amount_fen=amount, reason="paid for nothing", requested_at=utcnow()))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from processed_events where event_type = "
                           "'credence.certificate.refund_requested.v1'") == [(2,)], what="both asks handled")
    assert query(config["DB_URI"], "select due_id, amount_fen from refunds where requested_by = "
                 "'service:certificates'") == [(mine[1]["due_id"], 6000)]
    with rpc_proxy("payments", config) as payments:
        assert [i["code"] for i in payments.incidents(STAFF, True)["incidents"]] == ["refund_exceeds_due"]


def test_a_hundred_concurrent_duplicate_notifications_credit_once(payments_service):
    config, bank = payments_service
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], awaiting())
    due = dues_of(config, candidate(), "candidate", "cand-1", 1)[0]
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, "k")
        trade = bank.pay(MERCHANT, order["order_number"])
        # the provider retries, each delivery signed afresh; all of them in flight at once
        pending = [payments.handle_notification.call_async("sandbox", *signed(bank, trade)) for _ in range(100)]
        answers = [reply.result() for reply in pending]
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 99
    assert {a["status"] for a in answers} == {"paid"}
    assert query(db, "select count(*) from provider_payments") == [(1,)]
    assert query(db, "select count(*) from outbox where event_type = 'credence.payments.payment_succeeded.v1'") \
        == [(1,)]


def test_concurrent_refunds_of_one_students_fee_never_take_more_than_that_fee(payments_service):
    """Twenty requests at once to refund one student's whole fee out of a three-student order: the order could
    pay them three times over, the due only once."""
    config, _ = payments_service
    for cert, cand in (("c-1", "s-1"), ("c-2", "s-2"), ("c-3", "s-3")):
        publish_event(config["AMQP_URI"], awaiting(cert, cand, "institution", "inst-1"))
    dues = dues_of(config, institution(), "institution", "inst-1", 3)
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(institution(), {"due_ids": [d["due_id"] for d in dues]}, "k")
        assert payments.sandbox_pay(institution(), order["order_number"], {})["acknowledgement"]["status"] == "paid"
        pending = [payments.request_refund.call_async(STAFF, {
            "order_number": order["order_number"], "due_id": dues[0]["due_id"], "amount_fen": 6000,
            "reason": "withdrew", "request_key": f"r-{n}"}) for n in range(20)]
        outcomes = []
        for reply in pending:
            try:
                outcomes.append(reply.result()["status"])
            except InvalidInput as refused:
                outcomes.append(refused.code)
            except Conflict as lost:  # a lost race the caller may retry: nothing was kept
                outcomes.append(lost.code)
    assert outcomes.count("succeeded") == 1, outcomes
    assert set(outcomes) <= {"succeeded", "refund_exceeds_due", "concurrent_change"}, outcomes
    assert query(config["DB_URI"], "select due_id, amount_fen from refunds") == [(dues[0]["due_id"], 6000)]
    assert query(config["DB_URI"], "select refunded_fen, refund_reserved_fen, status from payment_orders") == [
        (6000, 0, "partially_refunded")]


def paid_order(config, bank, certificate_id="cert-1") -> dict:
    publish_event(config["AMQP_URI"], awaiting(certificate_id))
    due = wait_for(lambda: next((d for d in rpc_dues(config) if d["reference_id"] == certificate_id), None),
                   what="due")
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, certificate_id)
        assert payments.sandbox_pay(candidate(), order["order_number"], {})["acknowledgement"]["status"] == "paid"
        return payments.order(STAFF, order["order_number"])


def rpc_dues(config) -> list:
    with rpc_proxy("payments", config) as payments:
        return payments.dues_for_payer(STAFF, "candidate", "cand-1")["dues"]


def test_refunds_go_back_once_never_exceed_the_payment_and_carry_a_promise(payments_service, event_spy):
    config, bank = payments_service
    db = config["DB_URI"]
    order = paid_order(config, bank)
    spy = event_spy("payments", "credence.payments.payment_refunded.v1")
    number = order["order_number"]
    with rpc_proxy("payments", config) as payments:
        with pytest.raises(Forbidden):
            payments.request_refund(candidate(), {"order_number": number, "amount_fen": 100, "reason": "x",
                                                  "request_key": "r0"})
        with pytest.raises(InvalidInput) as too_much:
            payments.request_refund(STAFF, {"order_number": number, "amount_fen": 6001, "reason": "too much",
                                            "request_key": "r1"})
        assert too_much.value.code == "refund_exceeds_payment"
        with pytest.raises(InvalidInput):
            payments.request_refund(STAFF, {"order_number": number, "amount_fen": 20.5, "reason": "float",
                                            "request_key": "r1"})
        part = payments.request_refund(CERTIFICATES, {"order_number": number, "amount_fen": 2000,
                                                      "reason": "reissue application cancelled",
                                                      "reference_id": "cert-1", "request_key": "reissue-7"})
        assert part["status"] == "succeeded" and part["requested_by"] == "service:certificates"
        assert payments.request_refund(CERTIFICATES, {"order_number": number, "amount_fen": 2000,
                                                      "reason": "reissue application cancelled",
                                                      "reference_id": "cert-1", "request_key": "reissue-7"}
                                       )["refund_number"] == part["refund_number"]
        requested = datetime.fromisoformat(part["requested_at"])
        assert part["promised_by"] == domain.add_working_days(business_day(requested), 3).isoformat()
        assert payments.order(STAFF, number)["status"] == "partially_refunded"
        with pytest.raises(InvalidInput):
            payments.request_refund(STAFF, {"order_number": number, "amount_fen": 4001, "reason": "rest+1",
                                            "request_key": "r2"})
        rest = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 4000, "reason": "rest",
                                               "request_key": "r3"})
        assert rest["status"] == "succeeded"
        after = payments.order(STAFF, number)
        assert after["status"] == "refunded" and after["refunded_fen"] == 6000
        with pytest.raises(InvalidInput):
            payments.request_refund(STAFF, {"order_number": number, "amount_fen": 1, "reason": "more",
                                            "request_key": "r4"})
        assert [r["amount_fen"] for r in payments.refunds(STAFF, False, number)["refunds"]] == [2000, 4000]
        assert payments.refunds(STAFF, True)["refunds"] == []
        assert [i["code"] for i in payments.incidents(STAFF)["incidents"]].count("refund_exceeds_payment") == 3
    events = spy.collect(2)
    assert [(e["data"]["amount_fen"], e["data"]["fully_refunded"]) for e in events] == [(2000, False), (4000, True)]
    bank_ledger = sandbox_db_uri(None, db)
    assert query(bank_ledger, "select count(*), sum(amount_fen) from sandbox_provider_refunds") == [(2, 6000)]


def test_a_refund_the_provider_could_not_make_is_retried_with_the_same_number(payments_service):
    config, bank = payments_service
    order = paid_order(config, bank)
    engine = make_engine(config["DB_URI"])
    rules = usecases.PaymentRules()
    try:
        with Session(engine) as session, session.begin():
            refund = usecases.request_refund(session, rules, "staff:s", usecases.RequestRefund(
                order_number=order["order_number"], amount_fen=6000, reason="r", request_key="k"),
                usecases.IncidentContext())
        provider = SandboxProvider(bank, domain.load_private_key(SIGNING_SEED).public_key(), MERCHANT, "/pay")
        first = provider.refund(refund.refund_number, order["order_number"], order["provider_transaction_id"], 6000)
        # our commit was lost (a crash after the provider refunded): the retry sends the same number
        again = provider.refund(refund.refund_number, order["order_number"], order["provider_transaction_id"], 6000)
        assert again.provider_refund_id == first.provider_refund_id
        with Session(engine) as session, session.begin():
            assert usecases.complete_refund(session, "sandbox", refund.refund_number, again.provider_refund_id)
        with Session(engine) as session, session.begin():
            assert not usecases.complete_refund(session, "sandbox", refund.refund_number, again.provider_refund_id)
    finally:
        engine.dispose()
    assert query(sandbox_db_uri(None, config["DB_URI"]), "select count(*) from sandbox_provider_refunds") == [(1,)]
    assert query(config["DB_URI"], "select refunded_fen, status from payment_orders") == [(6000, "refunded")]


def test_an_unpaid_order_expires_but_a_payment_whose_notification_was_lost_is_credited(payments_service):
    config, bank = payments_service
    for certificate_id in ("cert-1", "cert-2", "cert-3"):
        publish_event(config["AMQP_URI"], awaiting(certificate_id))
    dues = dues_of(config, candidate(), "candidate", "cand-1", 3)
    with rpc_proxy("payments", config) as payments:
        unpaid = payments.create_order(candidate(), {"due_ids": [dues[0]["due_id"]]}, "u")
        lost = payments.create_order(candidate(), {"due_ids": [dues[1]["due_id"]]}, "l")
        short = payments.create_order(candidate(), {"due_ids": [dues[2]["due_id"]]}, "s")
        assert payments.sandbox_pay(candidate(), short["order_number"], {"amount_fen": 100})["refused"]["code"] \
            == "amount_mismatch"
    bank.pay(MERCHANT, lost["order_number"])  # paid, but the notification never arrives
    provider = SandboxProvider(bank, domain.load_private_key(SIGNING_SEED).public_key(), MERCHANT, "/pay")
    engine = make_engine(config["DB_URI"])
    later = utcnow() + timedelta(hours=1)
    try:
        with Session(engine) as session, session.begin():
            assert sorted(usecases.expired_order_numbers(session, later)) == sorted(
                [unpaid["order_number"], lost["order_number"], short["order_number"]])
        for number in (unpaid["order_number"], lost["order_number"], short["order_number"]):
            with Session(engine) as session, session.begin():
                usecases.expire_order(session, provider, number, later)
    finally:
        engine.dispose()
    with rpc_proxy("payments", config) as payments:
        assert payments.order(candidate(), unpaid["order_number"])["status"] == "expired"
        assert payments.order(candidate(), lost["order_number"])["status"] == "paid"
        # paid with a wrong amount: not credited, but not open forever either; flagged for a refund
        assert payments.order(candidate(), short["order_number"])["status"] == "expired"
        assert [(i["code"], i["order_number"]) for i in payments.incidents(STAFF, True)["incidents"]] == [
            ("amount_mismatch", short["order_number"]), ("amount_mismatch", short["order_number"])]
        with pytest.raises(Conflict):
            payments.sandbox_pay(candidate(), unpaid["order_number"], {})
        again = payments.create_order(candidate(), {"due_ids": [dues[2]["due_id"]]}, "s2")  # the due is free
        assert again["status"] == "created"
    assert query(config["DB_URI"], "select source from provider_payments") == [("query",)]


def replacement(application_id: str, kind="reissue") -> ReplacementAwaitingPaymentV1:
    return ReplacementAwaitingPaymentV1(application_id=application_id, certificate_id="cert-1",
                                        certificate_number="110126000000013", candidate_id="cand-1", kind=kind,
                                        purpose=f"certificate_{kind}", payer_id="cand-1", fee_fen=10000,
                                        created_at=utcnow())


def no_longer_due(application_id: str, kind="reissue", reason="withdrawn_by_candidate") -> FeeNoLongerDueV1:
    return FeeNoLongerDueV1(certificate_id="cert-1", candidate_id="cand-1", purpose=f"certificate_{kind}",
                            reference_id=application_id, reason=reason, ended_at=utcnow())


def test_a_fee_no_longer_due_cancels_its_due_and_closes_the_open_order_but_never_a_paid_one(payments_service):
    """Replacement applications have their own event; when one ends unpaid (certificates says the fee is no
    longer due) the due is cancelled, an open order holding it is closed, and it cannot be paid any more. A
    due already paid stays paid (certificates refunds it), and a cancellation that overtakes its due wins."""
    config, bank = payments_service
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    for application_id in ("app-open-order", "app-no-order", "app-paid"):
        publish_event(amqp, replacement(application_id))
    dues = {d["reference_id"]: d for d in dues_of(config, candidate(), "candidate", "cand-1", 3)}
    assert {d["purpose"] for d in dues.values()} == {"certificate_reissue"}
    with rpc_proxy("payments", config) as payments:
        waiting = payments.create_order(candidate(), {"due_ids": [dues["app-open-order"]["due_id"]]}, "w")
        paid = payments.create_order(candidate(), {"due_ids": [dues["app-paid"]["due_id"]]}, "p")
        assert payments.sandbox_pay(candidate(), paid["order_number"], {})["acknowledgement"]["status"] == "paid"
    for application_id in ("app-open-order", "app-no-order", "app-paid"):
        publish_event(amqp, no_longer_due(application_id))
    publish_event(amqp, no_longer_due("app-early", "correction", "cancelled_by_staff"))  # before its due
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(7,)], what="all seven events")
    publish_event(amqp, replacement("app-early", "correction"))  # the due's request arrives late
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(8,)], what="the late due")
    statuses = dict(query(db, "select reference_id, status from payment_dues"))
    assert statuses == {"app-open-order": "cancelled", "app-no-order": "cancelled", "app-paid": "paid",
                        "app-early": "cancelled"}
    with rpc_proxy("payments", config) as payments:
        assert payments.order(candidate(), waiting["order_number"])["status"] == "closed"
        assert payments.order(candidate(), paid["order_number"])["status"] == "paid"
        with pytest.raises(Conflict) as closed:
            payments.sandbox_pay(candidate(), waiting["order_number"], {})
        assert closed.value.code == "payment_refused_by_provider"  # closed at the provider too
        for reference in ("app-no-order", "app-early"):
            due_id = next(d["due_id"] for d in payments.dues_for_payer(STAFF, "candidate", "cand-1")["dues"]
                          if d["reference_id"] == reference)
            with pytest.raises(Conflict) as cancelled:
                payments.create_order(candidate(), {"due_ids": [due_id]}, f"again-{reference}")
            assert cancelled.value.code == "due_cancelled"
    assert query(db, "select count(*) from refunds") == [(0,)]


def test_a_fee_no_longer_due_leaves_an_institutions_order_for_the_class_open(payments_service):
    """One student's certificate is withdrawn (a re-check) while the institution's order for the class is open:
    the order stays open and payable for everyone; the student's due is cancelled, and paying the order all the
    same pays it (certificates then refunds that share: tests/integration/test_certificates.py)."""
    config, bank = payments_service
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    for certificate_id, candidate_id in (("cert-a", "cand-a"), ("cert-b", "cand-b")):
        publish_event(amqp, awaiting(certificate_id, candidate_id, "institution", "inst-1"))
    dues = dues_of(config, institution(), "institution", "inst-1", 2)
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(institution(), {"due_ids": [d["due_id"] for d in dues]}, "class")
    publish_event(amqp, FeeNoLongerDueV1(certificate_id="cert-a", candidate_id="cand-a", purpose="certificate_fee",
                                         reference_id="cert-a", reason="result_corrected", ended_at=utcnow()))
    wait_for(lambda: query(db, "select status from payment_dues where reference_id = 'cert-a'") == [("cancelled",)],
             what="the withdrawn student's due is cancelled")
    with rpc_proxy("payments", config) as payments:
        assert payments.order(institution(), order["order_number"])["status"] == "created"
        assert payments.sandbox_pay(institution(), order["order_number"], {})["acknowledgement"]["status"] == "paid"
    assert dict(query(db, "select reference_id, status from payment_dues")) == {"cert-a": "paid", "cert-b": "paid"}


def test_reconciliation_lists_every_mismatch_with_the_provider_statement(payments_service):
    config, bank = payments_service
    db = config["DB_URI"]
    matched = paid_order(config, bank, "cert-1")
    differs = paid_order(config, bank, "cert-2")
    with rpc_proxy("payments", config) as payments:
        payments.request_refund(STAFF, {"order_number": matched["order_number"], "amount_fen": 1000,
                                        "reason": "partial", "request_key": "k"})
    # the provider took a payment we never heard of, and we booked one amount wrong
    bank.prepay(MERCHANT, "P-STRAY", 5000, "stray", utcnow() + timedelta(minutes=30))
    stray = bank.pay(MERCHANT, "P-STRAY")
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE provider_payments SET amount_fen = 5999 WHERE order_number = "
                                       f"'{differs['order_number']}'")
    finally:
        engine.dispose()
    today = business_day(utcnow()).isoformat()
    with rpc_proxy("payments", config) as payments:
        report = payments.reconcile(STAFF, today)
        with pytest.raises(InvalidInput):
            payments.reconcile(STAFF, "yesterday")
        with pytest.raises(Forbidden):
            payments.reconcile(candidate(), today)
    assert report["payments_matched"] == 1 and report["refunds_matched"] == 1
    assert {(m["kind"], m["entry"], m["order_number"]) for m in report["mismatches"]} == {
        ("missing_in_credence", "payment", "P-STRAY"), ("amount_differs", "payment", differs["order_number"])}
    stray_line = next(m for m in report["mismatches"] if m["order_number"] == "P-STRAY")
    assert stray_line["reference"] == stray.transaction_id and stray_line["provider_amount_fen"] == 5000
    assert report["provider_total_fen"] == 6000 + 6000 + 5000 - 1000
    assert report["credence_total_fen"] == 6000 + 5999 - 1000
    assert json.dumps(report)  # plain JSON for the CLI and the staff route


def test_the_cli_reconciles_and_lists_refunds_and_incidents(payments_service, tmp_path, monkeypatch):
    import yaml
    from rich.console import Console
    from typer.testing import CliRunner

    from services.payments import cli
    from services.payments.cli import app

    monkeypatch.setattr(cli, "console", Console(width=200))

    config, bank = payments_service
    order = paid_order(config, bank)
    settings = tmp_path / "payments.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": config["DB_URI"], "PAYMENT_SANDBOX_SIGNING_KEY": SIGNING_SEED}))
    today = business_day(utcnow()).isoformat()
    runner = CliRunner()
    clean = runner.invoke(app, ["reconcile", today, "--config", str(settings)])
    assert clean.exit_code == 0, clean.output
    assert "1 payments and 0 refunds match" in clean.output and "No mismatches" in clean.output
    bank.prepay(MERCHANT, "P-STRAY", 5000, "stray", utcnow() + timedelta(minutes=30))
    bank.pay(MERCHANT, "P-STRAY")
    found = runner.invoke(app, ["reconcile", today, "--config", str(settings), "--json"])
    assert found.exit_code == 1
    report = json.loads(found.output)
    assert [(m["kind"], m["order_number"]) for m in report["mismatches"]] == [("missing_in_credence", "P-STRAY")]
    assert runner.invoke(app, ["reconcile", "not-a-day", "--config", str(settings)]).exit_code == 2
    with rpc_proxy("payments", config) as payments:
        payments.request_refund(STAFF, {"order_number": order["order_number"], "amount_fen": 6000, "reason": "r",
                                        "request_key": "k"})
        with pytest.raises(InvalidInput):
            payments.request_refund(STAFF, {"order_number": order["order_number"], "amount_fen": 1,
                                            "reason": "r", "request_key": "k2"})
    listed = runner.invoke(app, ["refunds", "--config", str(settings)])
    assert listed.exit_code == 0 and "succeeded" in listed.output and "60.00" in listed.output
    assert "No refunds." in runner.invoke(app, ["refunds", "--overdue", "--config", str(settings)]).output
    incidents = runner.invoke(app, ["incidents", "--config", str(settings)])
    assert "refund_exceeds_payment" in incidents.output
    assert "No incidents." in runner.invoke(app, ["incidents", "--flagged", "--config", str(settings)]).output


def test_a_crash_between_crediting_and_publishing_delivers_payment_succeeded_once_to_certificates(
        start_service, container_factory, event_spy):
    from services.certificates.service import CertificatesService
    from tests.integration.test_certificates import qualified

    certificates, certificates_config = start_service(CertificatesService)
    payments, config = start_service(PaymentsService, AMQP_URI=certificates_config["AMQP_URI"])
    db, certificates_db = config["DB_URI"], certificates_config["DB_URI"]
    spy = event_spy("payments", "credence.payments.payment_succeeded.v1")
    publish_event(config["AMQP_URI"], qualified())
    certificate_id = wait_for(lambda: query(certificates_db, "select certificate_id from certificates"),
                              what="application")[0][0]
    with rpc_proxy("certificates", certificates_config) as rpc:
        rpc.confirm_certificate(candidate(), certificate_id, {"photo_reference": "photos/cand-1.jpg",
                                                              "delivery_address": "北京市海淀区1号"})
    due = dues_of(config, candidate(), "candidate", "cand-1", 1)[0]
    with rpc_proxy("payments", config) as rpc:
        order = rpc.create_order(candidate(), {"due_ids": [due["due_id"]]}, "k")
    payments.stop()  # the payments process is gone ...

    # ... right after it committed the credit and its outbox row, before the relay published anything
    bank = SandboxBank(sandbox_db_uri(None, db), domain.load_private_key(SIGNING_SEED))
    provider = SandboxProvider(bank, domain.load_private_key(SIGNING_SEED).public_key(), MERCHANT, "/pay")
    body, headers = bank.notification(bank.pay(MERCHANT, order["order_number"]))
    engine = make_engine(db)
    try:
        with Session(engine) as session, session.begin():
            usecases.handle_notification(session, provider, body, headers, usecases.IncidentContext())
    finally:
        engine.dispose()
        bank.close_engine()
    assert query(db, "select count(*) from outbox where published_at is null") == [(1,)]
    assert spy.received_by_now() == []  # no payments process runs to publish it
    assert query(certificates_db, "select status from certificates") == [("awaiting_candidate_payment",)]

    [(event_id,)] = query(db, "select event_id from outbox")
    restarted = container_factory(PaymentsService, config)
    with handled(certificates, "handle_payment_succeeded", event_id):
        restarted.start()  # the restarted process publishes what was left
    issued = wait_for(lambda: query(certificates_db, "select certificate_number from certificates "
                                                     "where status = 'issued'"), what="certificate issued")
    first = spy.collect(1)
    assert len(first) == 1

    # the other crash point: published, but the process died before marking the row published
    restarted.stop()
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE outbox SET published_at = NULL")
    finally:
        engine.dispose()
    with handled(certificates, "handle_payment_succeeded", first[0]["id"]):  # certificates took the copy too
        container_factory(PaymentsService, config).start()
        again = spy.collect(1)
    assert [e["id"] for e in again] == [first[0]["id"]]  # the same event, delivered a second time
    assert spy.drain(db) == []  # and no third time
    assert query(certificates_db, "select count(*) from processed_events where event_type = "
                                  "'credence.payments.payment_succeeded.v1'") == [(1,)]
    assert query(certificates_db, "select certificate_number, status from certificates") == [(issued[0][0], "issued")]
    assert query(certificates_db, "select count(*) from outbox where event_type = "
                                  "'credence.certificate.issued.v1'") == [(1,)]


def test_notifications_for_unknown_orders_other_merchants_or_currencies_are_refused_and_flagged(payments_service):
    config, bank = payments_service
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], awaiting())
    due = dues_of(config, candidate(), "candidate", "cand-1", 1)[0]
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, "k")
        bank.prepay(MERCHANT, "P-NOT-OURS", 6000, "unknown", utcnow() + timedelta(minutes=30))
        with pytest.raises(NotFound) as unknown:
            payments.handle_notification("sandbox", *signed(bank, bank.pay(MERCHANT, "P-NOT-OURS")))
        assert unknown.value.code == "order_not_found"

        bank.prepay("1900000999", order["order_number"], 6000, "other merchant", utcnow() + timedelta(minutes=30))
        with pytest.raises(InvalidInput) as merchant:
            payments.handle_notification("sandbox", *signed(bank, bank.pay("1900000999", order["order_number"])))
        assert merchant.value.code == "merchant_mismatch"

        key = domain.load_private_key(SIGNING_SEED)  # the provider's own key: only the currency is wrong
        body = json.dumps({"id": "n-usd", "event_type": "TRANSACTION.SUCCESS", "mchid": MERCHANT,
                           "out_trade_no": order["order_number"], "transaction_id": "T-USD",
                           "trade_state": "SUCCESS", "amount": {"total": 6000, "currency": "USD"}})
        timestamp = str(int(utcnow().timestamp()))
        headers = {"Sandbox-Timestamp": timestamp, "Sandbox-Nonce": "n-usd", "Sandbox-Signature": domain.sign(
            key, domain.signing_message(timestamp, "n-usd", body.encode()))}
        with pytest.raises(InvalidInput) as currency:
            payments.handle_notification("sandbox", body, headers)
        assert currency.value.code == "currency_mismatch"
        with pytest.raises(NotFound):
            payments.handle_notification("alipay", body, headers)
        flagged = {i["code"]: i for i in payments.incidents(STAFF, True)["incidents"]}
        assert set(flagged) == {"order_not_found", "merchant_mismatch", "currency_mismatch"}
        assert flagged["order_not_found"]["order_number"] == "P-NOT-OURS"
        assert payments.order(candidate(), order["order_number"])["status"] == "created"
    assert query(db, "select count(*) from provider_payments") == [(0,)]


def test_refunds_past_their_promise_are_listed_as_overdue(payments_service):
    config, bank = payments_service
    order = paid_order(config, bank)
    engine = make_engine(config["DB_URI"])
    try:
        with Session(engine) as session, session.begin():  # requested, never submitted (provider down)
            usecases.request_refund(session, usecases.PaymentRules(), "staff:s", usecases.RequestRefund(
                order_number=order["order_number"], amount_fen=100, reason="late", request_key="late"),
                usecases.IncidentContext())
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE refunds SET promised_by = '2026-01-05'")
    finally:
        engine.dispose()
    with rpc_proxy("payments", config) as payments:
        overdue = payments.refunds(STAFF, True)["refunds"]
        assert [(r["amount_fen"], r["status"], r["overdue"]) for r in overdue] == [(100, "pending", True)]
        # the retry timer submits it with the number it was given
        refund_number = overdue[0]["refund_number"]
        wait_for(lambda: payments.refunds(STAFF, False)["refunds"][0]["status"] == "succeeded", timeout=30,
                 what="the timer submits the refund")
        assert payments.refunds(STAFF, True)["refunds"] == []
        assert payments.refunds(STAFF, False)["refunds"][0]["refund_number"] == refund_number


def test_a_refund_the_provider_refuses_for_good_is_failed_flagged_and_frees_its_amount(payments_service):
    config, bank = payments_service
    order = paid_order(config, bank)
    engine = make_engine(config["DB_URI"])
    try:
        with Session(engine) as session, session.begin():
            refund = usecases.request_refund(session, usecases.PaymentRules(), "staff:s", usecases.RequestRefund(
                order_number=order["order_number"], amount_fen=6000, reason="r", request_key="k"),
                usecases.IncidentContext())
        with Session(engine) as session, session.begin():
            assert usecases.fail_refund(session, refund.refund_number, "TRADE_NOT_PAID: no",
                                        usecases.IncidentContext())
        with Session(engine) as session, session.begin():
            assert not usecases.fail_refund(session, refund.refund_number, "again", usecases.IncidentContext())
    finally:
        engine.dispose()
    with rpc_proxy("payments", config) as payments:
        assert [r["status"] for r in payments.refunds(STAFF)["refunds"]] == ["failed"]
        assert [i["code"] for i in payments.incidents(STAFF, True)["incidents"]] == ["refund_refused"]
        retried = payments.request_refund(STAFF, {"order_number": order["order_number"], "amount_fen": 6000,
                                                  "reason": "again", "request_key": "k2"})
        assert retried["status"] == "succeeded"
    assert query(config["DB_URI"], "select refunded_fen, refund_reserved_fen, status from payment_orders") == [
        (6000, 0, "refunded")]


def test_a_refund_certificates_asks_for_that_cannot_be_made_is_flagged_not_retried_forever(payments_service):
    from credence_common.contracts.events import CertificateRefundRequestedV1

    config, bank = payments_service
    order = paid_order(config, bank)
    ask = CertificateRefundRequestedV1(
        refund_request_id="cancel:app-1", certificate_id="cert-1", candidate_id="cand-1", reference_id="app-1",
        order_number=order["order_number"], amount_fen=6000, reason="reissue application cancelled",
        requested_at=utcnow())
    publish_event(config["AMQP_URI"], ask)
    publish_event(config["AMQP_URI"], ask)  # redelivered under a new event id: the same refund
    impossible = ask.model_copy(update={"refund_request_id": "unused:P-GONE:x", "order_number": "P-GONE"})
    publish_event(config["AMQP_URI"], impossible)
    wait_for(lambda: query(config["DB_URI"], "select count(*) from processed_events where event_type = "
                           "'credence.certificate.refund_requested.v1'") == [(3,)], what="all three handled")
    with rpc_proxy("payments", config) as payments:
        wait_for(lambda: [r["status"] for r in payments.refunds(STAFF)["refunds"]] == ["succeeded"], timeout=30,
                 what="one refund made")
        flagged = payments.incidents(STAFF, True)["incidents"]
    assert [(i["code"], i["order_number"]) for i in flagged] == [("order_not_found", "P-GONE")]
