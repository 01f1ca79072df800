"""Payments in a real container: orders from certificate events, signed callbacks applied once."""

from __future__ import annotations

import json

import pytest

from credence_common.contracts.events import CertificateAwaitingPaymentV1
from credence_common.errors import BadRequest, Conflict, InvalidInput, NotFound, Unauthorized
from credence_common.events import make_envelope, utcnow
from services.payments.domain import sign_callback
from services.payments.service import PaymentsService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for

SECRET = "test-callback-secret"


def awaiting(certificate_id="cert-1") -> CertificateAwaitingPaymentV1:
    return CertificateAwaitingPaymentV1(certificate_id=certificate_id, candidate_id="cand-1", payer_kind="candidate",
                                        payer_id="cand-1", certificate_fee_fen=6000, program_code="PSY-COUNSELLOR",
                                        created_at=utcnow())


def callback(order_number: str, amount_fen=6000, txn="SBX-1", status="SUCCESS") -> str:
    return json.dumps({"order_number": order_number, "provider_transaction_id": txn, "amount_fen": amount_fen,
                       "status": status})


def test_one_order_per_certificate_and_a_signed_callback_pays_it_once(start_service, event_spy):
    container, config = start_service(PaymentsService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    spy = event_spy("payments")
    event = make_envelope(awaiting())
    publish_event(amqp, awaiting(), event)
    publish_event(amqp, awaiting(), event)
    publish_event(amqp, awaiting())
    wait_for(lambda: query(db, "select count(*) from processed_events") == [(2,)], what="events handled")
    with rpc_proxy("payments", config) as payments:
        orders = payments.orders_for_payer({"subject": "cand-1", "role": "candidate"}, "candidate", "cand-1")["orders"]
        assert len(orders) == 1
        order = orders[0]
        assert order["amount_fen"] == 6000 and order["status"] == "pending"
        number = order["order_number"]

        body = callback(number)
        with pytest.raises(Unauthorized) as unsigned:
            payments.handle_sandbox_callback(body, None)
        assert unsigned.value.code == "invalid_signature"
        with pytest.raises(Unauthorized):
            payments.handle_sandbox_callback(body, sign_callback("another-secret", body.encode()))
        tampered = callback(number, amount_fen=1)
        with pytest.raises(Unauthorized):
            payments.handle_sandbox_callback(tampered, sign_callback(SECRET, body.encode()))
        wrong_amount = callback(number, amount_fen=600)
        with pytest.raises(InvalidInput) as mismatch:
            payments.handle_sandbox_callback(wrong_amount, sign_callback(SECRET, wrong_amount.encode()))
        assert mismatch.value.code == "amount_mismatch"
        unknown = callback("P000")
        with pytest.raises(NotFound):
            payments.handle_sandbox_callback(unknown, sign_callback(SECRET, unknown.encode()))
        with pytest.raises(BadRequest):
            payments.handle_sandbox_callback("{not json", sign_callback(SECRET, b"{not json"))
        assert query(db, "select status from payment_orders") == [("pending",)]
        assert query(db, "select count(*) from outbox") == [(0,)]

        ack = payments.handle_sandbox_callback(body, sign_callback(SECRET, body.encode()))
        assert ack == {"order_number": number, "status": "paid", "duplicate": False}
        repeat = payments.handle_sandbox_callback(body, sign_callback(SECRET, body.encode()))
        assert repeat["duplicate"] is True
        other = callback(number, txn="SBX-2")
        with pytest.raises(Conflict):
            payments.handle_sandbox_callback(other, sign_callback(SECRET, other.encode()))

    succeeded = spy.collect(1)
    assert succeeded[0]["type"] == "credence.payments.payment_succeeded.v1"
    assert succeeded[0]["data"]["reference_id"] == "cert-1" and succeeded[0]["data"]["amount_fen"] == 6000
    assert spy.drain() == []
