"""WeChat Pay API v3 signing, verification, decryption and key rotation against generated vectors (and the
documented message layout), without a network: the provider's HTTP side is tested against the emulator in
tests/integration/test_payments_wechatpay.py."""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag

from credence_common.contracts.errors import BadRequest, Unauthorized
from services.payments.adapters import wechatpay
from services.payments.adapters.wechatpay import (
    KeyStore,
    WeChatPayProvider,
    authorization,
    decrypt_resource,
    encrypt_resource,
    parse_authorization,
    parse_trade_bill,
    request_message,
    response_message,
    rsa_sign,
    rsa_verify,
    yuan_to_fen,
)
from services.payments.adapters.wechatpay_emulator import EmulatorKeys, new_rsa_key, pem_public
from services.payments.domain.providers import ProviderError

MCHID = "1900000001"


@pytest.fixture(scope="module")
def keys():
    return EmulatorKeys()


@pytest.fixture
def provider(keys, tmp_path):
    keys.write(tmp_path / "secrets")
    return WeChatPayProvider(KeyStore(tmp_path / "secrets", check_interval_seconds=0), MCHID, "wxd678efh567hg6787",
                             "https://credence.example/api/v1/payments/notifications/wechatpay")


def test_the_request_message_is_laid_out_as_documented():
    # WeChat Pay's documented example (签名生成): GET /v3/certificates with an empty body
    assert request_message("GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", "") == (
        b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n")
    assert response_message("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c", b'{"a":1}') == (
        b'1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{"a":1}\n')


def test_an_authorization_header_signs_method_path_timestamp_nonce_and_body(keys):
    body = '{"mchid":"1900000001","out_trade_no":"P1"}'
    value = authorization(MCHID, keys.merchant_serial, keys.merchant_key, "POST", "/v3/pay/transactions/native",
                          body, timestamp="1554208460", nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert value.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",'
                            'nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",')
    fields = parse_authorization(value)
    assert fields["serial_no"] == keys.merchant_serial and fields["timestamp"] == "1554208460"
    public = keys.merchant_key.public_key()
    message = request_message("POST", "/v3/pay/transactions/native", "1554208460", fields["nonce_str"], body)
    assert rsa_verify(public, message, fields["signature"])
    assert not rsa_verify(public, message.replace(b"P1", b"P2"), fields["signature"])  # the body is signed
    assert not rsa_verify(public, request_message("POST", "/v3/pay/transactions/jsapi", "1554208460",
                                                  fields["nonce_str"], body), fields["signature"])  # and the path
    assert not rsa_verify(new_rsa_key().public_key(), message, fields["signature"])
    assert parse_authorization("Bearer x") is None
    assert parse_authorization('WECHATPAY2-SHA256-RSA2048 mchid="1"') is None  # fields missing


def test_resources_decrypt_with_the_apiv3_key_nonce_and_associated_data_only():
    key = secrets.token_hex(16).encode()
    ciphertext = encrypt_resource(key, "fdasflkja484w", "transaction", b'{"out_trade_no":"P1"}')
    assert decrypt_resource(key, "fdasflkja484w", "transaction", ciphertext) == b'{"out_trade_no":"P1"}'
    for wrong in ((secrets.token_hex(16).encode(), "fdasflkja484w", "transaction"),
                  (key, "fdasflkja485w", "transaction"), (key, "fdasflkja484w", "refund")):
        with pytest.raises(InvalidTag):
            decrypt_resource(*wrong, ciphertext)


def envelope(keys, event_type: str, content: dict, apiv3_key: bytes | None = None, associated="transaction"):
    nonce = "abcdef123456"
    ciphertext = encrypt_resource(apiv3_key or keys.apiv3_key, nonce, associated, json.dumps(content).encode())
    return json.dumps({"id": "EV-1", "event_type": event_type, "resource_type": "encrypt-resource",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
                                    "associated_data": associated, "nonce": nonce}}).encode()


def signed(keys, body: bytes, timestamp: int | None = None, key=None, serial=None) -> dict:
    stamp, nonce = str(timestamp or int(time.time())), secrets.token_hex(16)
    return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial or keys.platform_serial,
            "Wechatpay-Signature": rsa_sign(key or keys.platform_key, response_message(stamp, nonce, body))}


PAID = {"mchid": MCHID, "appid": "wxd678efh567hg6787", "out_trade_no": "P20261207A", "transaction_id": "4200000001",
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "success_time": "2026-12-07T10:34:56+08:00",
        "amount": {"total": 6000, "payer_total": 6000, "currency": "CNY", "payer_currency": "CNY"}}


def test_a_signed_encrypted_fresh_notification_is_read(keys, provider):
    body = envelope(keys, "TRANSACTION.SUCCESS", PAID)
    headers = signed(keys, body)
    notification = provider.verify_notification(body, headers, datetime.now(UTC))
    assert (notification.order_number, notification.transaction_id, notification.amount_fen,
            notification.trade_state, notification.currency) == ("P20261207A", "4200000001", 6000, "SUCCESS", "CNY")
    assert notification.nonce == headers["Wechatpay-Nonce"] and notification.refund_number is None
    assert notification.paid_at == datetime.fromisoformat("2026-12-07T10:34:56+08:00")


def test_forged_stale_undecryptable_and_unknown_serial_notifications_are_refused(keys, provider):
    now = datetime.now(UTC)
    body = envelope(keys, "TRANSACTION.SUCCESS", PAID)
    with pytest.raises(Unauthorized) as forged:
        provider.verify_notification(body, signed(keys, body, key=new_rsa_key()), now)
    assert forged.value.code == "invalid_signature"
    headers = signed(keys, body)
    with pytest.raises(Unauthorized) as altered:
        provider.verify_notification(body.replace(b"EV-1", b"EV-2"), headers, now)
    assert altered.value.code == "invalid_signature"
    with pytest.raises(Unauthorized) as stale:
        provider.verify_notification(body, signed(keys, body, timestamp=int(time.time()) - 301), now)
    assert stale.value.code == "stale_notification"
    with pytest.raises(Unauthorized) as unknown:
        provider.verify_notification(body, signed(keys, body, serial="PUB_KEY_ID_UNKNOWN"), now)
    assert unknown.value.code == "unknown_platform_serial"
    with pytest.raises(Unauthorized) as missing:
        provider.verify_notification(body, {k: v for k, v in headers.items() if k != "Wechatpay-Serial"}, now)
    assert missing.value.code == "invalid_signature"
    other_key = envelope(keys, "TRANSACTION.SUCCESS", PAID, apiv3_key=secrets.token_hex(16).encode())
    with pytest.raises(BadRequest) as undecryptable:
        provider.verify_notification(other_key, signed(keys, other_key), now)
    assert undecryptable.value.code == "undecryptable_resource"
    not_whole = envelope(keys, "TRANSACTION.SUCCESS", {**PAID, "amount": {"total": 60.5, "currency": "CNY"}})
    with pytest.raises(BadRequest) as amount:
        provider.verify_notification(not_whole, signed(keys, not_whole), now)
    assert amount.value.code == "malformed_amount"
    with pytest.raises(Unauthorized) as sm2:  # signed with WeChat Pay's SM2 variant: not a key we verify with
        provider.verify_notification(body, {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}, now)
    assert sm2.value.code == "unsupported_signature_type"
    assert provider.verify_notification(body, {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"},
                                        now).order_number == PAID["out_trade_no"]
    probe = b'{"event_type":"TRANSACTION.SUCCESS"}'  # WeChat Pay's signature probe: WECHATPAY/SIGNTEST/...
    with pytest.raises(Unauthorized):
        provider.verify_notification(probe, {**signed(keys, probe), "Wechatpay-Signature": "WECHATPAY/SIGNTEST/x"},
                                     now)


def test_a_refund_notification_names_our_refund_and_how_it_ended(keys, provider):
    content = {"mchid": MCHID, "out_trade_no": "P1", "transaction_id": "42", "out_refund_no": "R1",
               "refund_id": "503", "refund_status": "SUCCESS", "success_time": "2026-12-07T11:00:00+08:00",
               "amount": {"total": 6000, "refund": 2000, "payer_total": 6000, "payer_refund": 2000}}
    body = envelope(keys, "REFUND.SUCCESS", content, associated="refund")
    notification = provider.verify_notification(body, signed(keys, body), datetime.now(UTC))
    assert (notification.refund_number, notification.provider_refund_id, notification.refund_status,
            notification.amount_fen, notification.order_number) == ("R1", "503", "SUCCESS", 2000, "P1")


def test_platform_keys_rotate_without_a_restart_and_a_broken_update_keeps_the_last_good_keys(keys, provider,
                                                                                             tmp_path):
    body = envelope(keys, "TRANSACTION.SUCCESS", PAID)
    new_key = new_rsa_key()
    headers = signed(keys, body, key=new_key, serial="PUB_KEY_ID_NEW")
    with pytest.raises(Unauthorized):
        provider.verify_notification(body, headers, datetime.now(UTC))
    (tmp_path / "secrets" / "platform" / "PUB_KEY_ID_NEW.pem").write_bytes(pem_public(new_key))
    assert provider.verify_notification(body, headers, datetime.now(UTC)).order_number == "P20261207A"
    # the old key still verifies while WeChat Pay switches over
    assert provider.verify_notification(body, signed(keys, body), datetime.now(UTC)).amount_fen == 6000
    apiv3 = tmp_path / "secrets" / "apiv3_key"
    apiv3.write_bytes(b"too short")
    os.utime(apiv3, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert provider.keys.keys(force=True).apiv3_key == keys.apiv3_key  # logged, not taken


def test_platform_keys_may_be_a_directory_of_their_own(keys, tmp_path):
    """WECHATPAY_PLATFORM_KEYS_DIR: on Kubernetes the platform keys are a second Secret volume (a Secret volume has
    no subdirectories), and a key added to it is taken without a restart."""
    keys.write(tmp_path / "secrets")
    import shutil
    platform = tmp_path / "platform-keys"
    shutil.move(tmp_path / "secrets" / "platform", platform)
    with pytest.raises(ValueError, match="no platform key"):
        KeyStore(tmp_path / "secrets", 0)
    store = KeyStore(tmp_path / "secrets", 0, platform)
    assert set(store.keys().platform_keys) == {keys.platform_serial}
    new_key = new_rsa_key()
    (platform / "PUB_KEY_ID_NEXT.pem").write_bytes(pem_public(new_key))
    assert store.platform_key("PUB_KEY_ID_NEXT") is not None and store.platform_key(keys.platform_serial) is not None


def test_a_broken_secrets_directory_stops_the_start(tmp_path):
    with pytest.raises(ValueError, match="apiclient_key.pem"):
        KeyStore(tmp_path)


def test_the_trade_bill_is_read_in_fen_exactly():
    assert yuan_to_fen("`60.00") == 6000 and yuan_to_fen("0.01") == 1 and yuan_to_fen("1234.5") == 123450
    with pytest.raises(ValueError):
        yuan_to_fen("0.001")
    header = ",".join(wechatpay.BILL_COLUMNS)

    def row(status, trade_no, order, settle, refund_no="0", refund="0.00", order_total="0.00", asked="0.00"):
        fields = ["2026-12-07 10:00:00", "wx", MCHID, "0", "", trade_no, order, "o", "NATIVE", status, "OTHERS",
                  "CNY", settle, "0.00", "0", refund_no, refund, "0.00", "", "", "x", "", "0", "0.60%",
                  order_total, asked, ""]
        return ",".join("`" + f for f in fields)

    bill = "\r\n".join([header, row("SUCCESS", "4200A", "P1", "60.00", order_total="60.00"),
                        row("REFUND", "4200A", "P1", "0.00", "R1", "20.00", asked="20.00"),
                        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
                        "`2,`60.00,`20.00,`0.00,`0.00,`60.00,`20.00", ""]).encode()
    lines = parse_trade_bill(bill)
    assert [(x.entry, x.reference, x.order_number, x.amount_fen) for x in lines] == [
        ("payment", "4200A", "P1", 6000), ("refund", "R1", "P1", 2000)]
    with pytest.raises(ProviderError) as bad:
        parse_trade_bill(b"not,a,bill\r\n")
    assert bad.value.code == "INVALID_BILL"


def test_the_provider_is_chosen_by_configuration_and_refuses_unsafe_settings(keys, tmp_path, monkeypatch):
    from services.payments.adapters.configuration import PROVIDERS, wechatpay_provider

    keys.write(tmp_path / "secrets")
    config = {"PAYMENT_PROVIDER": "wechatpay", "WECHATPAY_SECRETS_DIR": str(tmp_path / "secrets"),
              "WECHATPAY_APPID": "wxd678efh567hg6787", "PAYMENT_MERCHANT_ID": MCHID,
              "WECHATPAY_NOTIFY_URL": "https://credence.example/api/v1/payments/notifications/wechatpay"}
    assert PROVIDERS == ("sandbox", "wechatpay")
    provider = wechatpay_provider(config)
    assert (provider.name, provider.merchant_id, provider.api_base) == ("wechatpay", MCHID,
                                                                         "https://api.mch.weixin.qq.com")
    with pytest.raises(ValueError, match="WECHATPAY_SECRETS_DIR"):
        wechatpay_provider({**config, "WECHATPAY_SECRETS_DIR": ""})
    with pytest.raises(ValueError, match="WECHATPAY_APPID"):
        wechatpay_provider({**config, "WECHATPAY_APPID": ""})
    monkeypatch.setenv("CREDENCE_ENV", "production")
    with pytest.raises(ValueError, match="WECHATPAY_NOTIFY_URL"):
        wechatpay_provider({**config, "WECHATPAY_NOTIFY_URL": "http://credence.example/notify"})
    with pytest.raises(ValueError, match="WECHATPAY_API_BASE"):
        wechatpay_provider({**config, "WECHATPAY_API_BASE": "http://127.0.0.1:8765"})
    monkeypatch.setenv("CREDENCE_ENV", "staging")
    assert wechatpay_provider({**config, "WECHATPAY_API_BASE": "http://127.0.0.1:8765"}).api_base == (
        "http://127.0.0.1:8765")  # the emulator, in staging


def test_a_processing_refund_is_asked_about_after_doubling_waits_up_to_the_bound():
    from services.payments.usecases import PaymentRules

    rules = PaymentRules()  # the defaults: 5 s first, never more than an hour apart
    waits = [rules.refund_check_delay(checks).total_seconds() for checks in range(12)]
    assert waits == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    assert rules.refund_check_delay(10**9).total_seconds() == 3600  # no overflow, still bounded


def test_outside_development_the_notification_address_must_be_https(monkeypatch):
    """WeChat Pay notifies only an https:// address, so staging and production refuse another at start-up (why
    `make run-emulated`, whose local gateway has no TLS, runs under development rules: README)."""
    from services.payments.adapters.configuration import wechatpay_provider

    config = {"WECHATPAY_SECRETS_DIR": "/nowhere", "WECHATPAY_APPID": "wxd678efh567hg6787",
              "WECHATPAY_NOTIFY_URL": "http://127.0.0.1:8000/api/v1/payments/notifications/wechatpay"}
    for environment in ("staging", "production"):
        monkeypatch.setenv("CREDENCE_ENV", environment)
        with pytest.raises(ValueError, match="WECHATPAY_NOTIFY_URL must be our https://"):
            wechatpay_provider(config)
