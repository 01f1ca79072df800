"""Payments configured with PAYMENT_PROVIDER=wechatpay, in a real container on SQLite and PostgreSQL, against the
WeChat Pay API v3 emulator (services/payments/adapters/wechatpay_emulator.py) on a free port: prepay, notifications
signed and encrypted as documented (credited once; forged, stale, undecryptable ones refused and recorded), close,
refunds and their notification, failures of the provider, and reconciliation against its trade bill."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import REGISTRY

from credence_common.calendar import business_day
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import BadRequest, Conflict, InvalidInput, ServiceUnavailable, Unauthorized
from deploy.platform import free_port
from gateway.service import GatewayService
from services.payments.adapters.metrics import ENTRIES, MISMATCH_KINDS
from services.payments.adapters.wechatpay import KeyStore, WeChatPayProvider, rsa_verify
from services.payments.adapters.wechatpay_emulator import EmulatorKeys, WeChatPayEmulator, pem_public
from services.payments.domain.providers import PROVIDER_ZONE, ProviderError
from services.payments.models import Base
from services.payments.service import PaymentsService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for
from tests.integration.test_http_deadlines import settings_for
from tests.integration.test_payments import STAFF, awaiting, candidate

ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "prometheus" / "alerts.yml"
MERCHANT = "1900000001"
APPID = "wxd678efh567hg6787"
NOTIFY_URL = "https://credence.test/api/v1/payments/notifications/wechatpay"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture(scope="module")
def generated_keys():
    return EmulatorKeys()


@pytest.fixture
def emulator(generated_keys, tmp_path):
    keys = EmulatorKeys(generated_keys.merchant_key, generated_keys.merchant_serial, generated_keys.apiv3_key,
                        generated_keys.platform_key, generated_keys.platform_serial)
    keys.write(tmp_path / "wechatpay")
    with WeChatPayEmulator(keys, MERCHANT) as running:
        yield running


def wechat_settings(emulator, tmp_path) -> dict:
    return {"PAYMENT_PROVIDER": "wechatpay", "WECHATPAY_SECRETS_DIR": str(tmp_path / "wechatpay"),
            "WECHATPAY_API_BASE": emulator.base_url, "WECHATPAY_APPID": APPID, "WECHATPAY_NOTIFY_URL": NOTIFY_URL,
            "WECHATPAY_TIMEOUT_SECONDS": 1, "WECHATPAY_KEY_CHECK_SECONDS": 0}


@pytest.fixture
def wechat(start_service, emulator, tmp_path):
    _container, config = start_service(PaymentsService, **wechat_settings(emulator, tmp_path))
    return config, emulator


@pytest.fixture
def gateway(container_factory, rabbit_config) -> str:
    """The gateway (its nameko binding) on the same broker as the payments container: the route WeChat Pay posts
    its notifications to."""
    port = free_port()
    container_factory(GatewayService, settings_for(rabbit_config["AMQP_URI"], port, RPC_TIMEOUT_SECONDS=10)).start()
    return f"http://127.0.0.1:{port}"


def adapter(emulator, tmp_path) -> WeChatPayProvider:
    return WeChatPayProvider(KeyStore(tmp_path / "wechatpay", 0), MERCHANT, APPID, NOTIFY_URL, emulator.base_url,
                             timeout_seconds=1)


def open_due(config, certificate_id="cert-1") -> dict:
    publish_event(config["AMQP_URI"], awaiting(certificate_id))
    with rpc_proxy("payments", config) as payments:
        return wait_for(lambda: next((d for d in payments.dues_for_payer(STAFF, "candidate", "cand-1")["dues"]
                                      if d["reference_id"] == certificate_id), None), what="due")


def open_order(config, certificate_id="cert-1") -> dict:
    due = open_due(config, certificate_id)
    with rpc_proxy("payments", config) as payments:
        return payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, certificate_id)


def deliver(config, body: bytes, headers: dict) -> dict:
    with rpc_proxy("payments", config) as payments:
        return payments.handle_notification("wechatpay", body.decode(), headers)


def paid_order(config, emulator, certificate_id="cert-1") -> dict:
    order = open_order(config, certificate_id)
    emulator.pay(order["order_number"])
    assert deliver(config, *emulator.notification(order["order_number"]))["status"] == "paid"
    with rpc_proxy("payments", config) as payments:
        return payments.order(STAFF, order["order_number"])


def incident_codes(config) -> dict[str, bool]:
    with rpc_proxy("payments", config) as payments:
        return {i["code"]: i["flagged"] for i in payments.incidents(STAFF)["incidents"]}


def test_an_order_is_prepaid_and_credited_once_by_a_signed_encrypted_notification(wechat):
    config, emulator = wechat
    db = config["DB_URI"]
    order = open_order(config)
    number = order["order_number"]
    assert order["pay_url"].startswith("weixin://wxpay/bizpayurl?pr=") and order["amount_fen"] == 6000
    trade = emulator.trades[number]
    assert (trade.total, trade.trade_type, trade.notify_url, trade.appid) == (6000, "NATIVE", NOTIFY_URL, APPID)
    emulator.pay(number)

    for refused, error, code in ((emulator.notification(number, forged=True), Unauthorized, "invalid_signature"),
                                 (emulator.notification(number, stale_seconds=600), Unauthorized,
                                  "stale_notification"),
                                 (emulator.notification(number, undecryptable=True), BadRequest,
                                  "undecryptable_resource"),
                                 (emulator.notification(number, serial="PUB_KEY_ID_NOBODY"), Unauthorized,
                                  "unknown_platform_serial")):
        with pytest.raises(error) as caught:
            deliver(config, *refused)
        assert caught.value.code == code
    assert query(db, "select status from payment_orders") == [("created",)]

    body, headers = emulator.notification(number)
    assert deliver(config, body, headers) == {"order_number": number, "status": "paid", "duplicate": False}
    redelivered = emulator.notification(number)  # WeChat Pay retries: signed afresh
    assert deliver(config, *redelivered)["duplicate"] is True
    # the very same bytes and headers again (WeChat Pay did not get our answer, or someone replays a captured
    # one): already applied, so answered as done, or WeChat Pay would retry for a day; nothing changes
    assert deliver(config, body, headers) == {"order_number": number, "status": "paid", "duplicate": True}
    # the same nonce on another body (a new envelope id), signed by the platform key: not a copy, refused
    reused_nonce = emulator.notification(number, nonce=headers["Wechatpay-Nonce"])
    with pytest.raises(Conflict) as replay:
        deliver(config, *reused_nonce)
    assert replay.value.code == "replayed_notification"
    assert query(db, "select provider, provider_transaction_id, amount_fen from provider_payments") == [
        ("wechatpay", emulator.trades[number].transaction_id, 6000)]
    assert query(db, "select status from payment_dues") == [("paid",)]
    incidents = incident_codes(config)
    assert {"invalid_signature", "stale_notification", "undecryptable_resource", "unknown_platform_serial",
            "replayed_notification"} <= incidents.keys()
    assert incidents["undecryptable_resource"] and incidents["unknown_platform_serial"]  # flagged: money waits


def test_through_the_gateway_a_copy_of_an_applied_notification_is_answered_200_and_a_reused_nonce_409(
        wechat, gateway):
    """WeChat Pay sends a notification again until it gets a 2xx: through the public route, the exact copy of a
    payment or refund notification already applied is answered 200 (WeChat Pay stops) and changes nothing; the
    same nonce over another body is refused 409 and recorded."""
    config, emulator = wechat
    db = config["DB_URI"]
    url = f"{gateway}/api/v1/payments/notifications/wechatpay"
    order = open_order(config)
    number = order["order_number"]
    emulator.pay(number)
    body, headers = emulator.notification(number)
    first = requests.post(url, data=body, headers=headers, timeout=20)
    assert first.status_code == 200, first.text
    assert first.json() == {"order_number": number, "status": "paid", "duplicate": False}
    for _copy in range(2):
        again = requests.post(url, data=body, headers=headers, timeout=20)
        assert again.status_code == 200, again.text
        assert again.json() == {"order_number": number, "status": "paid", "duplicate": True}
    reused_body, reused_headers = emulator.notification(number, nonce=headers["Wechatpay-Nonce"])
    reused = requests.post(url, data=reused_body, headers=reused_headers, timeout=20)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "replayed_notification"
    assert query(db, "select count(*) from provider_payments") == [(1,)]
    # one payment_succeeded, not one per copy
    assert query(db, "select count(*) from outbox where event_type = 'credence.payments.payment_succeeded.v1'") == [
        (1,)]

    with rpc_proxy("payments", config) as payments:
        refund = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 6000, "reason": "all",
                                                 "request_key": "k1"})
    emulator.settle_refund(refund["refund_number"])
    refund_body, refund_headers = emulator.refund_notification(refund["refund_number"])
    for duplicate in (False, True):
        answered = requests.post(url, data=refund_body, headers=refund_headers, timeout=20)
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"order_number": number, "status": "refunded", "duplicate": duplicate}
    assert query(db, "select refunded_fen, status from payment_orders") == [(6000, "refunded")]
    assert query(db, "select count(*) from outbox where event_type = 'credence.payments.payment_refunded.v1'") == [
        (1,)]
    assert sorted(code for code in incident_codes(config)) == ["replayed_notification"]


def every_stored_value(db_uri: str) -> str:
    """Every row of every payments table, as text: what a database reader sees."""
    return "\n".join(str(query(db_uri, f"select * from {table}")) for table in Base.metadata.tables)


def test_a_candidate_paying_inside_wechat_gets_a_jsapi_order_with_signed_requestpayment_parameters(wechat, caplog):
    """method jsapi with the payer's openid: a JSAPI order at WeChat Pay and the wx.requestPayment parameters signed
    with the merchant key; native stays the default; the openid is validated, sent to WeChat Pay and nowhere else
    (not in our tables, not in our logs)."""
    caplog.set_level(logging.DEBUG)
    config, emulator = wechat
    db = config["DB_URI"]
    due = open_due(config)
    jsapi = {"due_ids": [due["due_id"]], "method": "jsapi", "payer_openid": OPENID}
    with rpc_proxy("payments", config) as payments:
        for bad in ({"due_ids": [due["due_id"]], "method": "jsapi"},  # no openid
                    {**jsapi, "payer_openid": "o' or 1=1 --"},  # not an openid
                    {"due_ids": [due["due_id"]], "payer_openid": OPENID},  # an openid for a QR code order
                    {**jsapi, "method": "h5"}):
            with pytest.raises(InvalidInput) as refused:
                payments.create_order(candidate(), bad, None)
            assert refused.value.code == "invalid_input" and "o' or" not in refused.value.message
        order = payments.create_order(candidate(), jsapi, "jsapi-1")
        number = order["order_number"]
        assert (order["pay_method"], order["pay_url"], order["status"]) == ("jsapi", "", "created")
        assert OPENID not in json.dumps(order)
        trade = emulator.trades[number]
        assert (trade.trade_type, trade.payer_openid, trade.total, trade.appid) == ("JSAPI", OPENID, 6000, APPID)
        params = order["jsapi_pay_params"]
        assert params["appId"] == APPID and params["signType"] == "RSA" and params["package"].startswith(
            "prepay_id=wx")
        message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
        assert rsa_verify(emulator.keys.merchant_key.public_key(), message, params["paySign"])
        # asked again (a reload of the page): the same order, its parameters signed afresh
        again = payments.create_order(candidate(), jsapi, None)
        assert again["order_number"] == number and again["jsapi_pay_params"]["package"] == params["package"]
        with pytest.raises(Conflict) as other_method:  # the same dues as a QR code while the JSAPI order is open
            payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, None)
        assert other_method.value.code == "order_open_with_other_method"
        # reading the order shows how it is paid, not the parameters: only opening it again signs them
        assert payments.order(candidate(), number)["jsapi_pay_params"] is None
    emulator.pay(number)
    assert deliver(config, *emulator.notification(number))["status"] == "paid"
    with rpc_proxy("payments", config) as payments:
        paid = payments.create_order(candidate(), jsapi, "jsapi-1")  # the key's order, paid: nothing to sign
        assert paid["status"] == "paid" and paid["jsapi_pay_params"] is None

        # WeChat Pay refuses the openid (not of our AppID): 422; it cannot be reached: 503; nothing written
        second = open_due(config, "cert-2")
        emulator.faults.openid_mismatch = True
        with pytest.raises(InvalidInput) as mismatch:
            payments.create_order(candidate(), {**jsapi, "due_ids": [second["due_id"]]}, None)
        assert mismatch.value.code == "jsapi_order_refused" and OPENID not in mismatch.value.message
        emulator.faults.openid_mismatch, emulator.faults.fail_requests = False, 1
        with pytest.raises(ServiceUnavailable) as down:
            payments.create_order(candidate(), {**jsapi, "due_ids": [second["due_id"]]}, None)
        assert down.value.code == "payment_provider_unavailable"
    assert query(db, "select count(*) from payment_orders") == [(1,)]
    assert OPENID not in every_stored_value(db)
    assert OPENID not in caplog.text


def test_a_close_at_wechatpay_and_a_payment_that_won_the_race(wechat):
    config, emulator = wechat
    unpaid = open_order(config, "cert-1")
    with rpc_proxy("payments", config) as payments:
        emulator.faults.fail_requests = 1  # WeChat Pay answers 500 once: the order stays open, the payer may retry
        with pytest.raises(ServiceUnavailable) as unavailable:
            payments.close_order(candidate(), unpaid["order_number"])
        assert unavailable.value.code == "payment_provider_unavailable"
        assert payments.order(STAFF, unpaid["order_number"])["status"] == "created"
        assert payments.close_order(candidate(), unpaid["order_number"])["status"] == "closed"
        assert emulator.trades[unpaid["order_number"]].trade_state == "CLOSED"
        raced = open_order(config, "cert-2")
        emulator.pay(raced["order_number"])  # paid, its notification not arrived yet
        closed = payments.close_order(candidate(), raced["order_number"])
        assert closed["status"] == "paid"  # WeChat Pay said ORDERPAID; the query found the payment
    assert ("POST", f"/v3/pay/transactions/out-trade-no/{raced['order_number']}/close", 400) in emulator.requests
    # out of order: a payment taken after our close (WeChat Pay misbehaving) is refused and flagged for a refund
    emulator.pay(unpaid["order_number"], even_if_closed=True)
    with pytest.raises(Conflict) as closed_before:
        deliver(config, *emulator.notification(unpaid["order_number"]))
    assert closed_before.value.code == "order_closed" and incident_codes(config)["order_closed"] is True


def test_a_provider_that_times_out_opens_no_order(wechat):
    config, emulator = wechat
    emulator.faults.delay_requests, emulator.faults.delay_seconds = 1, 2.5
    with pytest.raises(ServiceUnavailable) as timed_out:
        open_order(config)
    assert timed_out.value.code == "payment_provider_unavailable"
    assert query(config["DB_URI"], "select count(*) from payment_orders") == [(0,)]
    assert query(config["DB_URI"], "select open_order_number from payment_dues") == [(None,)]


def test_no_row_lock_is_held_while_wechatpay_opens_the_order(wechat):
    """Opening an order asks WeChat Pay for its prepay (up to WECHATPAY_TIMEOUT_SECONDS) before anything is locked
    or written: while it is slow to answer, the due's row can be locked by anyone else at once (PostgreSQL's
    NOWAIT; SQLite takes no lock before the first write). The order is then opened as usual."""
    from sqlalchemy import text

    from credence_common.persistence.db import make_engine

    config, emulator = wechat
    due = open_due(config)
    emulator.faults.delay_requests, emulator.faults.delay_seconds = 1, 0.6
    opened: dict = {}

    def create() -> None:
        with rpc_proxy("payments", config) as payments:
            opened.update(payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, "slow"))

    creating = threading.Thread(target=create)
    creating.start()
    try:
        wait_for(lambda: ("POST", "/v3/pay/transactions/native") in emulator.received, what="the prepay on its way")
        assert emulator.faults.delay_requests == 0  # it is the slow one: WeChat Pay has not answered yet
        if config["DB_URI"].startswith("postgresql"):
            engine = make_engine(config["DB_URI"])
            try:
                with engine.begin() as connection:
                    assert connection.execute(text("select due_id from payment_dues where due_id = :d for update "
                                                   "nowait"), {"d": due["due_id"]}).all() == [(due["due_id"],)]
            finally:
                engine.dispose()
        assert not opened  # the probe ran while the order was still being opened
    finally:
        creating.join(timeout=30)
    assert opened["status"] == "created"
    assert query(config["DB_URI"], "select open_order_number from payment_dues") == [(opened["order_number"],)]


def test_a_refund_is_processing_until_its_notification_and_is_applied_once(wechat):
    config, emulator = wechat
    db = config["DB_URI"]
    order = paid_order(config, emulator)
    number = order["order_number"]
    with rpc_proxy("payments", config) as payments:
        refund = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 2000, "reason": "partial",
                                                 "request_key": "k1"})
    assert refund["status"] == "pending"  # WeChat Pay answered PROCESSING
    assert emulator.refunds[refund["refund_number"]].status == "PROCESSING"
    # the refund notification arrives (perhaps before a resubmission sees SUCCESS): applied once either way
    emulator.settle_refund(refund["refund_number"])
    body, headers = emulator.refund_notification(refund["refund_number"])
    deliver(config, body, headers)
    assert deliver(config, *emulator.refund_notification(refund["refund_number"]))["duplicate"] is True
    assert query(db, "select status, provider_refund_id from refunds") == [
        ("succeeded", emulator.refunds[refund["refund_number"]].refund_id)]
    assert query(db, "select refunded_fen, refund_reserved_fen, status from payment_orders") == [
        (2000, 0, "partially_refunded")]
    forged = emulator.refund_notification(refund["refund_number"], forged=True)
    with pytest.raises(Unauthorized):
        deliver(config, *forged)
    # a refund WeChat Pay rejects is failed, flagged and frees its amount
    emulator.faults.reject_refunds = "INVALID_REQUEST"
    with rpc_proxy("payments", config) as payments:
        rejected = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 1000, "reason": "again",
                                                   "request_key": "k2"})
    assert rejected["status"] == "failed" and rejected["last_error"].startswith("INVALID_REQUEST")
    assert incident_codes(config)["refund_refused"] is True
    # a 500 is retried with the same out_refund_no until WeChat Pay takes it
    emulator.faults.reject_refunds, emulator.faults.fail_requests, emulator.faults.refund_status = None, 1, "SUCCESS"
    with rpc_proxy("payments", config) as payments:
        retried = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 4000, "reason": "rest",
                                                  "request_key": "k3"})
        assert retried["status"] == "pending" and retried["last_error"].startswith("SYSTEM_ERROR")
        done = wait_for(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
            payments.refunds(STAFF, False, number)["refunds"][-1]), what="the retried refund")
    assert done["refund_number"] == retried["refund_number"]
    assert query(db, "select refunded_fen, status from payment_orders") == [(6000, "refunded")]
    # out of order: the payment's notification redelivered after the refunds changes nothing
    assert deliver(config, *emulator.notification(number)) == {"order_number": number, "status": "refunded",
                                                               "duplicate": True}
    assert query(db, "select count(*) from provider_payments") == [(1,)]


def timer_runs(entrypoint: str) -> float:
    """How many runs of a payments timer have finished (the entrypoint metric counts each once it is done)."""
    return sum(REGISTRY.get_sample_value("credence_entrypoint_calls_total", {
        "service": "payments", "entrypoint": entrypoint, "kind": "timer", "outcome": outcome}) or 0
        for outcome in ("ok", "rejected", "error"))


def test_a_processing_refund_whose_notification_never_comes_is_ended_by_asking_and_either_way_once(
        start_service, emulator, tmp_path):
    """A refund WeChat Pay answers PROCESSING is asked about (GET /v3/refund/domestic/refunds/{out_refund_no}) on a
    backoff schedule (0.2 s, then twice as long each time, at most 0.8 s apart here; 5 s and an hour by default):
    with its notification suppressed, the query completes it; a query answer that arrives after the notification
    did changes nothing; a refund WeChat Pay closes is failed once."""
    _container, config = start_service(PaymentsService, **wechat_settings(emulator, tmp_path),
                                       REFUND_CHECK_FIRST_SECONDS=0.2, REFUND_CHECK_MAX_SECONDS=0.8,
                                       REFUND_CHECK_TICK_SECONDS=0.05)
    db = config["DB_URI"]
    number = paid_order(config, emulator)["order_number"]

    def refund(amount_fen: int, key: str) -> str:
        with rpc_proxy("payments", config) as payments:
            asked = payments.request_refund(STAFF, {"order_number": number, "amount_fen": amount_fen,
                                                    "reason": "r", "request_key": key})
        assert asked["status"] == "pending" and emulator.refunds[asked["refund_number"]].status == "PROCESSING"
        return asked["refund_number"]

    def status_of(refund_number: str) -> str:
        return query(db, "select status from refunds where refund_number = :n", n=refund_number)[0][0]

    def asked_about(refund_number: str) -> int:
        return emulator.received.count(("GET", f"/v3/refund/domestic/refunds/{refund_number}"))

    # the notification never comes: asked again and again (backing off) while PROCESSING, completed once settled
    first = refund(2000, "k1")
    def checks_of(refund_number: str) -> tuple[int, str]:
        return query(db, "select checks, last_error from refunds where refund_number = :n", n=refund_number)[0]

    # the refund's own count, not the emulator's: the emulator counts a query when it arrives, the refund row
    # once its answer is stored (CI, 2026-12-07: three queries received, the third answer not yet recorded)
    wait_for(lambda: checks_of(first)[0] >= 3, what="three refund queries recorded")
    last_error = checks_of(first)[1]
    assert status_of(first) == "pending" and asked_about(first) >= 3 and last_error == "PROCESSING at the provider"
    emulator.settle_refund(first)
    wait_for(lambda: status_of(first) == "succeeded", what="the refund completed by its query")
    assert deliver(config, *emulator.refund_notification(first))["duplicate"] is True  # late: changes nothing
    asked = asked_about(first)

    # both arrive: the query is in flight (WeChat Pay slow to answer it) when the notification is applied
    second = refund(3000, "k2")
    emulator.settle_refund(second)
    emulator.faults.delay_requests, emulator.faults.delay_seconds = 1, 0.5
    wait_for(lambda: asked_about(second) >= 1, what="the query of the second refund on its way")
    assert deliver(config, *emulator.refund_notification(second))["duplicate"] is False
    wait_for(lambda: ("GET", f"/v3/refund/domestic/refunds/{second}", 200) in emulator.requests,
             what="the slow query answered SUCCESS")
    runs = timer_runs("check_processing_refunds")  # the run holding that answer finishes, then one more
    wait_for(lambda: timer_runs("check_processing_refunds") >= runs + 2, what="the timer run that got the answer")
    assert status_of(second) == "succeeded"
    assert asked_about(first) == asked  # an ended refund is not asked about again

    # WeChat Pay closes a refund (its notification lost too): failed once, flagged, its amount free again
    third = refund(1000, "k3")
    emulator.settle_refund(third, "CLOSED")
    wait_for(lambda: status_of(third) == "failed", what="the closed refund failed by its query")
    assert query(db, "select refunded_fen, refund_reserved_fen, status from payment_orders") == [
        (5000, 0, "partially_refunded")]
    assert query(db, "select count(*) from outbox where event_type = 'credence.payments.payment_refunded.v1'") == [
        (2,)]
    assert incident_codes(config) == {"refund_refused": True}


def incident_count(config, code: str) -> int:
    with rpc_proxy("payments", config) as payments:
        return sum(1 for i in payments.incidents(STAFF)["incidents"] if i["code"] == code)


def test_an_abnormal_refund_keeps_its_amount_is_flagged_once_and_is_never_refunded_a_second_time(wechat):
    """WeChat Pay's REFUND.ABNORMAL: the refund was made but could not reach the payer (their card was cancelled
    or frozen); the money waits at WeChat Pay until the merchant settles it by hand. It is not a failure: the
    refund stays pending with its amount reserved (a second refund of the same money is refused), it is flagged
    once (refund_abnormal), and WeChat Pay's SUCCESS once it is settled completes it."""
    config, emulator = wechat
    db = config["DB_URI"]
    number = paid_order(config, emulator)["order_number"]
    with rpc_proxy("payments", config) as payments:
        refund = payments.request_refund(STAFF, {"order_number": number, "amount_fen": 6000, "reason": "all",
                                                 "request_key": "k1"})
    refund_number = refund["refund_number"]
    emulator.settle_refund(refund_number, "ABNORMAL")
    notification = emulator.refund_notification(refund_number)
    assert deliver(config, *notification)["duplicate"] is False
    assert deliver(config, *notification)["duplicate"] is True  # WeChat Pay's copy: changes nothing
    assert deliver(config, *emulator.refund_notification(refund_number))["duplicate"] is True  # sent again
    (status, last_error, held, next_check, provider_refund_id), = query(
        db, "select status, last_error, abnormal_at is not null, next_check_at, provider_refund_id from refunds")
    assert (status, held, next_check) == ("pending", True, None) and last_error.startswith("ABNORMAL")
    assert provider_refund_id == emulator.refunds[refund_number].refund_id  # so the submit timer leaves it be
    assert query(db, "select refunded_fen, refund_reserved_fen, status from payment_orders") == [(0, 6000, "paid")]
    assert incident_codes(config) == {"refund_abnormal": True} and incident_count(config, "refund_abnormal") == 1
    with rpc_proxy("payments", config) as payments, pytest.raises(InvalidInput) as refused:
        payments.request_refund(STAFF, {"order_number": number, "amount_fen": 6000, "reason": "again",
                                        "request_key": "k2"})
    assert refused.value.code == "refund_exceeds_payment" and len(emulator.refunds) == 1
    # finance settles it at the merchant platform; WeChat Pay's SUCCESS for it completes the refund
    emulator.settle_refund(refund_number, "SUCCESS")
    assert deliver(config, *emulator.refund_notification(refund_number))["status"] == "refunded"
    assert query(db, "select status from refunds") == [("succeeded",)]
    assert query(db, "select refunded_fen, refund_reserved_fen, status from payment_orders") == [
        (6000, 0, "refunded")]


def test_an_abnormal_answer_to_a_query_or_a_refund_request_holds_the_refund_and_a_mismatched_amount_stops_asking(
        start_service, emulator, tmp_path):
    """ABNORMAL learnt by asking (its notification lost) or in the answer to the refund request itself holds the
    refund as its notification does: pending, amount reserved, flagged once, no longer asked about. A refund WeChat
    Pay reports with another amount than we asked for is never completed: it is no longer asked about, and the
    flagged amount_mismatch is recorded once, however many checks run after."""
    _container, config = start_service(PaymentsService, **wechat_settings(emulator, tmp_path),
                                       REFUND_CHECK_FIRST_SECONDS=0.1, REFUND_CHECK_MAX_SECONDS=0.2,
                                       REFUND_CHECK_TICK_SECONDS=0.05)
    db = config["DB_URI"]
    number = paid_order(config, emulator)["order_number"]

    def refund(amount_fen: int, key: str) -> dict:
        with rpc_proxy("payments", config) as payments:
            return payments.request_refund(STAFF, {"order_number": number, "amount_fen": amount_fen,
                                                   "reason": "r", "request_key": key})

    def row(refund_number: str) -> tuple:
        return query(db, "select status, abnormal_at is not null, next_check_at is null, last_error from refunds "
                         "where refund_number = :n", n=refund_number)[0]

    def asked_about(refund_number: str) -> int:
        return emulator.received.count(("GET", f"/v3/refund/domestic/refunds/{refund_number}"))

    def more_timer_runs(count: int) -> None:
        runs = timer_runs("check_processing_refunds")
        wait_for(lambda: timer_runs("check_processing_refunds") >= runs + count, what=f"{count} more checks")

    # by asking: the notification never comes
    first = refund(2000, "k1")["refund_number"]
    wait_for(lambda: asked_about(first) >= 1, what="the first query")
    emulator.settle_refund(first, "ABNORMAL")
    wait_for(lambda: row(first)[1], what="the abnormal refund held by its query")
    assert row(first)[:3] == ("pending", True, True) and row(first)[3].startswith("ABNORMAL")
    asked = asked_about(first)
    more_timer_runs(3)
    assert asked_about(first) == asked  # no longer asked about
    assert query(db, "select refunded_fen, refund_reserved_fen from payment_orders") == [(0, 2000)]

    # WeChat Pay says done, for another amount: not completed, asked no more, flagged once
    second = refund(1000, "k2")["refund_number"]
    wait_for(lambda: asked_about(second) >= 1, what="the first query")
    with emulator.lock:
        emulator.refunds[second].refund = 999
    emulator.settle_refund(second)  # SUCCESS, for 999 fen
    wait_for(lambda: row(second)[2], what="the mismatched refund no longer asked about")
    asked = asked_about(second)
    more_timer_runs(3)
    assert asked_about(second) == asked and row(second)[0] == "pending"
    assert row(second)[3] == "amount differs at the provider: a person must look"
    assert incident_count(config, "amount_mismatch") == 1

    # in the answer to the refund request
    emulator.faults.refund_status = "ABNORMAL"
    third = refund(500, "k3")
    assert third["status"] == "pending" and third["last_error"].startswith("ABNORMAL")
    assert row(third["refund_number"])[:3] == ("pending", True, True)
    assert incident_count(config, "refund_abnormal") == 2
    assert incident_codes(config) == {"refund_abnormal": True, "amount_mismatch": True}
    assert query(db, "select refunded_fen, refund_reserved_fen, status from payment_orders") == [(0, 3500, "paid")]


def test_reconciliation_reports_where_the_trade_bill_disagrees(wechat):
    config, emulator = wechat
    matched = paid_order(config, emulator, "cert-1")
    differs = paid_order(config, emulator, "cert-2")
    emulator.faults.refund_status = "SUCCESS"
    with rpc_proxy("payments", config) as payments:
        assert payments.request_refund(STAFF, {"order_number": matched["order_number"], "amount_fen": 1000,
                                               "reason": "partial", "request_key": "k"})["status"] == "succeeded"
    emulator.faults.bill_amounts[differs["order_number"]] = 5999
    emulator.faults.bill_extra.append({"transaction_id": "4200STRAY", "out_trade_no": "P-STRAY", "amount_fen": 5000})
    today = business_day(utcnow()).isoformat()
    with rpc_proxy("payments", config) as payments:
        report = payments.reconcile(STAFF, today)
        emulator.faults.forge_answers = True
        with pytest.raises(ServiceUnavailable) as forged:
            payments.reconcile(STAFF, today)
        assert "INVALID_RESPONSE_SIGNATURE" in forged.value.message
    assert report["provider"] == "wechatpay"
    assert report["payments_matched"] == 1 and report["refunds_matched"] == 1
    assert {(m["kind"], m["entry"], m["order_number"], m["provider_amount_fen"]) for m in report["mismatches"]} == {
        ("missing_in_credence", "payment", "P-STRAY", 5000), ("amount_differs", "payment", differs["order_number"],
                                                                5999)}
    assert report["credence_total_fen"] == 6000 + 6000 - 1000
    assert report["provider_total_fen"] == 6000 + 5999 + 5000 - 1000


def reconciliation_gauge(kind: str, entry: str = "payment") -> float | None:
    return REGISTRY.get_sample_value("credence_payments_reconciliation_mismatches",
                                     {"provider": "wechatpay", "kind": kind, "entry": entry})


def last_reconciled() -> float:
    return REGISTRY.get_sample_value("credence_payments_reconciliation_last_success_timestamp_seconds",
                                     {"provider": "wechatpay"}) or 0.0


def mismatch_annotations(kind: str, entry: str, count: int = 1) -> dict:
    return {"summary": f"wechatpay: {count} {entry} disagreement(s) in reconciliation ({kind})",
            "description": f"The last reconciliation of the previous Beijing day against the statement of wechatpay "
                           f"found {count} {entry} disagreement(s) of kind {kind} (missing_at_provider, "
                           "missing_in_credence or amount_differs): money may have moved without our ledger "
                           "knowing, or the other way round. `credence payments reconcile` lists them.",
            "runbook_url": "docs/operations.md#alert-credencepaymentsreconciliationmismatch"}


def alerts_promtool_would_fire(tmp_path, alertname: str, expected: list[dict]) -> str:
    """``promtool test rules`` over deploy/observability's alert rules, fed the reconciliation series this process
    exports now (as Prometheus would scrape them from the payments instance): passes when ``alertname`` fires
    with exactly ``expected`` labels."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make promtool`"
    series = []
    for family in REGISTRY.collect():
        if family.name.startswith("credence_payments_reconciliation"):
            for sample in family.samples:
                if sample.labels.get("provider") == "wechatpay":
                    labels = ",".join(f'{k}="{v}"' for k, v in {"job": "payments", **sample.labels}.items())
                    series.append({"series": f"{sample.name}{{{labels}}}", "values": f"{sample.value:g}x5"})
    test = {"rule_files": [str(ALERT_RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "2m", "alertname": alertname, "exp_alerts": [
            {"exp_labels": {"severity": "critical", "provider": "wechatpay", **labels},
             "exp_annotations": mismatch_annotations(**labels)} for labels in expected]}]}]}
    path = tmp_path / "reconciliation.test.yml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", path.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    return done.stdout + done.stderr if done.returncode == 0 else f"FAILED {done.stdout}{done.stderr}"


def test_a_bill_that_disagrees_moves_the_reconciliation_metric_fires_the_alert_and_the_cli_lists_it(
        start_service, emulator, tmp_path, monkeypatch):
    """The scheduled reconciliation of the previous Beijing day (every 0.2 s here, from 00:00) sets the gauge of
    disagreements by kind: 0 while WeChat Pay's bill agrees, moved by a bill that does not (the emulator's fault
    switches), and back to 0 once it agrees again; fed to promtool, the gauge makes the alert fire."""
    from rich.console import Console
    from typer.testing import CliRunner

    from services.payments import cli

    settings = wechat_settings(emulator, tmp_path)
    _container, config = start_service(PaymentsService, **settings, PAYMENT_RECONCILE_INTERVAL_SECONDS=0.2,
                                       PAYMENT_RECONCILE_AFTER_HOUR=0)
    yesterday = business_day(utcnow()) - timedelta(days=1)
    order = open_order(config)
    number = order["order_number"]
    emulator.pay(number, when=datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=PROVIDER_ZONE))
    assert deliver(config, *emulator.notification(number))["status"] == "paid"
    credited = time.time()

    def every_gauge(expected: dict) -> bool:
        return all(reconciliation_gauge(kind, entry) == expected.get((kind, entry), 0)
                   for kind in MISMATCH_KINDS for entry in ENTRIES)

    wait_for(lambda: last_reconciled() > credited and every_gauge({}), what="a reconciliation run that agrees")
    assert "SUCCESS" in alerts_promtool_would_fire(tmp_path, "CredencePaymentsReconciliationMismatch", [])

    emulator.faults.bill_amounts[number] = 5999
    emulator.faults.bill_extra.append({"transaction_id": "4200STRAY", "out_trade_no": "P-STRAY", "amount_fen": 5000})
    wait_for(lambda: every_gauge({("amount_differs", "payment"): 1, ("missing_in_credence", "payment"): 1}),
             what="the disagreements in the gauge")
    outcome = alerts_promtool_would_fire(tmp_path, "CredencePaymentsReconciliationMismatch", [
        {"kind": "amount_differs", "entry": "payment"}, {"kind": "missing_in_credence", "entry": "payment"}])
    assert "SUCCESS" in outcome, outcome

    # the operator's report of the same day lists each disagreement (exit code 1)
    monkeypatch.setattr(cli, "console", Console(width=200))
    config_file = tmp_path / "payments.yml"
    config_file.write_text(yaml.safe_dump({"DB_URI": config["DB_URI"], **settings}), encoding="utf-8")
    found = CliRunner().invoke(cli.app, ["reconcile", yesterday.isoformat(), "--config", str(config_file), "--json"])
    assert found.exit_code == 1, found.output
    assert {(m["kind"], m["order_number"]) for m in json.loads(found.output)["mismatches"]} == {
        ("amount_differs", number), ("missing_in_credence", "P-STRAY")}

    emulator.faults.bill_amounts.clear()
    emulator.faults.bill_extra.clear()
    wait_for(lambda: every_gauge({}), what="the gauge back to 0 once the bill agrees")


def test_the_adapter_signs_what_the_emulator_verifies_and_refuses_what_it_cannot_believe(emulator, tmp_path):
    """The adapter alone (no service): JSAPI prepay, a merchant key the emulator does not know, forged answers,
    5xx and timeouts, and a platform key rotation picked up from the secrets directory."""
    provider = adapter(emulator, tmp_path)
    jsapi = provider.prepare_jsapi("P-JSAPI", 100, "Credence fee", utcnow(), "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    assert jsapi.prepay_id.startswith("wx") and jsapi.pay_params["package"] == f"prepay_id={jsapi.prepay_id}"
    assert emulator.trades["P-JSAPI"].trade_type == "JSAPI"
    with pytest.raises(ProviderError) as no_openid:
        provider.prepare_jsapi("P-JSAPI-2", 100, "Credence fee", utcnow(), "")
    assert no_openid.value.code == "PARAM_ERROR" and not no_openid.value.retryable
    assert provider.query("P-NONE") is None
    assert provider.query("P-JSAPI").trade_state == "NOTPAY"

    emulator.merchant_keys.clear()  # WeChat Pay no longer knows our merchant certificate
    with pytest.raises(ProviderError) as unsigned:
        provider.query("P-JSAPI")
    assert unsigned.value.code == "SIGN_ERROR"
    emulator.merchant_keys[emulator.keys.merchant_serial] = emulator.keys.merchant_key.public_key()

    emulator.faults.forge_answers = True
    with pytest.raises(ProviderError) as forged:
        provider.query("P-JSAPI")
    assert forged.value.code == "INVALID_RESPONSE_SIGNATURE" and forged.value.retryable
    with pytest.raises(ProviderError) as forged_missing:  # a forged "no such order" is not taken for one
        provider.query("P-NONE")
    assert forged_missing.value.code == "INVALID_RESPONSE_SIGNATURE"
    with pytest.raises(ProviderError) as unsigned_refusal:  # reported, but nothing is given up on its word
        provider.prepare_jsapi("P-JSAPI-3", 100, "Credence fee", utcnow(), "")
    assert unsigned_refusal.value.code == "PARAM_ERROR" and unsigned_refusal.value.retryable
    emulator.faults.forge_answers = False
    emulator.faults.fail_requests = 1
    with pytest.raises(ProviderError) as failing:
        provider.query("P-JSAPI")
    assert failing.value.code == "SYSTEM_ERROR" and failing.value.retryable
    emulator.faults.delay_requests, emulator.faults.delay_seconds = 1, 2
    with pytest.raises(ProviderError) as slow:
        provider.query("P-JSAPI")
    assert slow.value.code == "TIMEOUT" and slow.value.retryable

    old_serial = emulator.keys.platform_serial
    new_key = emulator.rotate_platform_key("PUB_KEY_ID_ROTATED")
    with pytest.raises(ProviderError):  # answers signed with a key we have not been given yet
        provider.query("P-JSAPI")
    (tmp_path / "wechatpay" / "platform" / "PUB_KEY_ID_ROTATED.pem").write_bytes(pem_public(new_key))
    assert provider.query("P-JSAPI").trade_state == "NOTPAY"  # picked up without a restart
    assert old_serial in provider.keys.keys().platform_keys  # the old one still trusted until it is removed


def test_in_staging_the_emulator_pays_and_delivers_the_notification_again_until_it_is_taken(emulator, tmp_path):
    received: list[tuple[bytes, dict]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append((self.rfile.read(int(self.headers["Content-Length"])), dict(self.headers)))
            self.send_response(500 if len(received) == 1 else 204)  # our side fails once: WeChat Pay sends again
            self.send_header("Content-Length", "0")
            self.end_headers()

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/api/v1/payments/notifications/wechatpay"
        provider = WeChatPayProvider(KeyStore(tmp_path / "wechatpay", 0), MERCHANT, APPID, url, emulator.base_url)
        provider.prepare("P-STAGING", 6000, "Credence fee", utcnow())
        with pytest.raises(requests.HTTPError):  # the payer's route pays only open orders
            requests.post(f"{emulator.base_url}/emulator/trades/P-NONE/payment", timeout=5).raise_for_status()
        paid = requests.post(f"{emulator.base_url}/emulator/trades/P-STAGING/payment", timeout=10).json()
        assert paid["notify_status"] == 204 and len(received) == 2
        first, second = (provider.verify_notification(body, headers, utcnow()) for body, headers in received)
        assert first.order_number == second.order_number == "P-STAGING" and first.amount_fen == 6000
        assert first.nonce != second.nonce  # each delivery signed afresh: a duplicate, not a replay
        assert first.transaction_id == paid["transaction_id"]
    finally:
        receiver.shutdown()
        receiver.server_close()
