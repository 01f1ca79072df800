"""What each CREDENCE_ENV lets a real service do, on SQLite and PostgreSQL: outside development the payments
service refuses to be the payer at its sandbox (defence in depth: the gateway does not route there either), and
the order stays unpaid."""

from __future__ import annotations

import pytest

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import NotFound
from credence_common.contracts.events import CertificateAwaitingPaymentV1
from services.payments.service import PaymentsService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for

CANDIDATE = signed_actor({"subject": "cand-1", "role": "candidate"})
STAFF = signed_actor({"subject": "staff-1", "role": "staff"})


def open_order(config) -> str:
    publish_event(config["AMQP_URI"], CertificateAwaitingPaymentV1(
        certificate_id="cert-1", candidate_id="cand-1", payer_kind="candidate", payer_id="cand-1",
        certificate_fee_fen=6000, program_code="PSY-COUNSELLOR", created_at=utcnow()))
    with rpc_proxy("payments", config) as payments:
        dues = wait_for(lambda: payments.dues_for_payer(CANDIDATE, "candidate", "cand-1")["dues"], what="the due")
        return payments.create_order(CANDIDATE, {"due_ids": [dues[0]["due_id"]]}, "k-1")["order_number"]


def test_in_staging_the_sandbox_payer_refuses_and_the_order_stays_unpaid(start_service, monkeypatch):
    # staging is the one environment besides development where the payment sandbox runs at all (production
    # refuses to start payments on it)
    monkeypatch.setenv("CREDENCE_ENV", "staging")
    _, config = start_service(PaymentsService, PAYMENTS_DATA_KEYS="k1=" + "5a" * 32,  # staging refuses the dev key
                                PAYMENTS_DATA_ACTIVE_KEY_ID="k1")
    order_number = open_order(config)
    with rpc_proxy("payments", config) as payments:
        for actor in (CANDIDATE, STAFF):
            with pytest.raises(NotFound) as refused:
                payments.sandbox_pay(actor, order_number, {})
            assert refused.value.code == "route_not_found"
        assert payments.order(CANDIDATE, order_number)["status"] == "created"
    assert query(config["DB_URI"], "select count(*) from provider_payments") == [(0,)]


def test_in_development_the_sandbox_payer_pays(start_service, monkeypatch):
    """The same order, the same call, in development: paid (so the refusal above is the environment's doing)."""
    monkeypatch.setenv("CREDENCE_ENV", "development")
    _, config = start_service(PaymentsService)
    order_number = open_order(config)
    with rpc_proxy("payments", config) as payments:
        assert payments.sandbox_pay(CANDIDATE, order_number, {})["acknowledgement"]["status"] == "paid"
        assert payments.order(CANDIDATE, order_number)["status"] == "paid"
