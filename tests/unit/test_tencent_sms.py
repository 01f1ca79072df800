"""Tencent Cloud SMS (services/identity/adapters/tencent_sms.py) and its emulator's signature check
(services/identity/adapters/sms_emulator.py) against Tencent's documented TC3-HMAC-SHA256 example, requests the SDK
signs (generated vectors), Tencent's documented SendSms answer (recorded), the code table, start-up refusals, key
rotation and the circuit breaker, without a network: the HTTP side runs against the emulator in
tests/integration/test_identity_tencent_sms.py."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.sms.v20210111 import models

from services.identity.adapters import tencent_sms
from services.identity.adapters.sms_emulator import (
    TencentSmsEmulator,
    canonical_request,
    new_secret_pair,
    parse_authorization,
    string_to_sign,
    tc3_signature,
    write_secrets,
)
from services.identity.adapters.tencent_sms import PURPOSES, TencentSecrets, classify, templates_from_config
from services.identity.dependencies import Sms
from services.identity.domain import codes

TEMPLATES = "registration=100001,password_reset=100002,ticket_lookup=100003,sign_in=100004"
MOBILE = "13812345678"


def test_the_documented_tc3_example_is_reproduced_exactly():
    """Tencent Cloud's "Signature v3" worked example (CVM DescribeInstances, 2019-02-25): the canonical request's
    digest and the signature it documents."""
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    headers = {"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"}
    canonical = canonical_request("POST", "/", "", headers, ["content-type", "host"], payload)
    assert canonical.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    to_sign = string_to_sign("1551113065", "2019-02-25/cvm/tc3_request", canonical)
    assert to_sign.splitlines()[-1] == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    assert tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "2019-02-25", "cvm", to_sign) == \
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def signed_by_sdk(delivery, action: str, params: dict) -> RequestInternal:
    """A request as the SDK builds and signs it, without sending it."""
    request = RequestInternal(delivery.client._get_endpoint(), "POST", "/", header={})
    delivery.client._build_req_inter(action, params, request)
    return request


@pytest.fixture
def secrets_dir(tmp_path):
    secret_id, secret_key = new_secret_pair()
    write_secrets(tmp_path / "tencent", secret_id, secret_key)
    return tmp_path / "tencent", secret_id, secret_key


def config(directory, **overrides) -> dict:
    return {"SMS_TENCENT_TEMPLATES": TEMPLATES, "SMS_TENCENT_SIGN_NAME": "Credence",
            "SMS_TENCENT_SDK_APP_ID": "1400006666", "SMS_TENCENT_SECRETS_DIR": str(directory),
            "SMS_TENCENT_ENDPOINT": "http://127.0.0.1:9", "SMS_TENCENT_KEY_CHECK_SECONDS": 0,
            "SMS_TENCENT_BREAKER_FAILURES": 2, "SMS_TENCENT_BREAKER_RESET_SECONDS": 60, **overrides}


def test_the_emulator_verifies_what_the_sdk_signs_and_refuses_what_it_should(secrets_dir):
    directory, secret_id, secret_key = secrets_dir
    delivery = tencent_sms.from_config(config(directory))
    emulator = TencentSmsEmulator({secret_id: secret_key})
    try:
        body = {"SmsSdkAppId": "1400006666", "PhoneNumberSet": [f"+86{MOBILE}"]}
        request = signed_by_sdk(delivery, "SendSms", body)
        headers = {k.lower(): v for k, v in request.header.items()}
        fields = parse_authorization(headers["authorization"])
        assert fields["secret_id"] == secret_id and fields["service"] == "sms"
        assert fields["signed_headers"] == "content-type;host" and headers["x-tc-version"] == "2021-01-11"
        data = request.data.encode()
        assert emulator.check_signature("POST", "/", headers, data) is None
        assert emulator.check_signature("POST", "/", headers, data.replace(MOBILE.encode(), b"13900000000")) == \
            "AuthFailure.SignatureFailure"  # the body is signed
        assert emulator.check_signature("POST", "/", dict(headers, host="sms.example.com"), data) == \
            "AuthFailure.SignatureFailure"  # so is the host
        emulator.faults.clock_skew_seconds = 301
        assert emulator.check_signature("POST", "/", headers, data) == "AuthFailure.SignatureExpire"
        emulator.faults.clock_skew_seconds = 0
        emulator.secrets = {"AKIDsomeoneelse": secret_key}
        assert emulator.check_signature("POST", "/", headers, data) == "AuthFailure.SecretIdNotFound"
        emulator.secrets = {secret_id: "not-the-key"}
        assert emulator.check_signature("POST", "/", headers, data) == "AuthFailure.SignatureFailure"
        assert emulator.check_signature("POST", "/", dict(headers, authorization="Bearer x"), data) == \
            "AuthFailure.SignatureFailure"
    finally:
        emulator.server.server_close()


# A SendSms answer as Tencent Cloud documents it (its example's SerialNo and RequestId), for our number
RECORDED_SEND_SMS = {"Response": {"SendStatusSet": [{
    "SerialNo": "5000:1045710669157053657849499619", "PhoneNumber": "+8613812345678", "Fee": 1,
    "SessionContext": "test", "Code": "Ok", "Message": "send success", "IsoCode": "CN"}],
    "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}


def answer(document: dict) -> models.SendSmsResponse:
    model = models.SendSmsResponse()
    model._deserialize(document["Response"])
    return model


def test_a_text_is_its_purposes_template_with_its_values_and_the_serial_no_is_kept(secrets_dir):
    directory, *_ = secrets_dir
    delivery = tencent_sms.from_config(config(directory, SMS_TENCENT_SIGN_NAMES="ticket_lookup=准考证查询"))
    sent = []
    delivery.client.SendSms = lambda request: sent.append(request._serialize()) or \
        answer(RECORDED_SEND_SMS)
    outcome = delivery.deliver(7, MOBILE, "[Credence] Your code is 123456.", "registration", ["123456", "5"])
    assert outcome.outcome == "sent" and outcome.serial_no == "5000:1045710669157053657849499619"
    assert sent[0] == {"PhoneNumberSet": ["+8613812345678"], "SmsSdkAppId": "1400006666", "TemplateId": "100001",
                       "SignName": "Credence", "TemplateParamSet": ["123456", "5"],
                       "SessionContext": "credence-sms-7"}
    delivery.deliver(8, MOBILE, "", "ticket_lookup", ["654321", "5"])
    assert (sent[1]["TemplateId"], sent[1]["SignName"]) == ("100003", "准考证查询")  # its own signature
    # a webhook-era text (no purpose, no values) cannot become a template: failed, not sent as something else
    assert delivery.deliver(9, MOBILE, "text", None, None).outcome == "failed" and len(sent) == 2


@pytest.mark.parametrize("code, outcome", [
    ("Ok", "sent"),
    ("LimitExceeded.PhoneNumberDailyLimit", "retry"),
    ("LimitExceeded.PhoneNumberThirtySecondLimit", "retry"),
    ("RequestLimitExceeded", "retry"),
    ("InternalError.Timeout", "retry"),
    ("InternalError.OtherError", "retry"),
    ("AuthFailure.SignatureFailure", "retry"),  # a key being rotated: the operator's fix, then it goes
    ("ClientNetworkError", "retry"),
    ("ServerNetworkError", "retry"),
    ("FailedOperation.InsufficientBalanceInSmsPackage", "retry"),  # the operator tops up
    ("SomethingNew.NobodyKnows", "retry"),  # unknown: kept until GIVE_UP_AFTER rather than dropped
    ("InvalidParameterValue.IncorrectPhoneNumber", "failed"),
    ("FailedOperation.TemplateIncorrectOrUnapproved", "failed"),
    ("FailedOperation.SignatureIncorrectOrUnapproved", "failed"),
    ("FailedOperation.PhoneNumberInBlacklist", "failed"),
    ("UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber", "failed"),
])
def test_each_result_code_is_sent_retried_or_failed(code, outcome):
    assert classify(code) == outcome


def test_a_per_number_code_decides_and_a_failure_is_logged_without_the_number(secrets_dir, caplog):
    directory, *_ = secrets_dir
    delivery = tencent_sms.from_config(config(directory))
    refused = json.loads(json.dumps(RECORDED_SEND_SMS))
    status = refused["Response"]["SendStatusSet"][0]
    status.update(SerialNo="", Code="InvalidParameterValue.IncorrectPhoneNumber", Message="incorrect number")
    delivery.client.SendSms = lambda request: answer(refused)
    with caplog.at_level(logging.INFO):
        outcome = delivery.deliver(1, MOBILE, "", "sign_in", ["123456", "5"])
    assert (outcome.outcome, outcome.error) == ("failed", "InvalidParameterValue.IncorrectPhoneNumber")
    assert "138****5678" in caplog.text and MOBILE not in caplog.text and "123456" not in caplog.text
    status.update(Code="LimitExceeded.PhoneNumberDailyLimit")
    assert delivery.deliver(2, MOBILE, "", "sign_in", ["123456", "5"]).outcome == "retry"


def test_the_breaker_opens_on_outages_and_then_nothing_is_sent(secrets_dir):
    directory, *_ = secrets_dir
    delivery = tencent_sms.from_config(config(directory))
    calls = []

    def down(request):
        calls.append(request)
        raise TencentCloudSDKException("ServerNetworkError", "<html>503</html>")

    delivery.client.SendSms = down
    assert [delivery.deliver(n, MOBILE, "", "registration", ["1", "5"]).outcome for n in range(2)] == \
        ["retry", "retry"]
    assert delivery.paused() and delivery.breaker.current_state == "open"
    assert delivery.deliver(3, MOBILE, "", "registration", ["1", "5"]).outcome == "wait"
    assert len(calls) == 2  # the open breaker did not call Tencent
    assert tencent_sms.BREAKER_OPEN.labels("tencent_sms")._value.get() == 1
    # a refusal of one text (a template not approved) is no outage: it never opens the breaker
    fresh = tencent_sms.from_config(config(directory))
    fresh.client.SendSms = lambda request: (_ for _ in ()).throw(
        TencentCloudSDKException("FailedOperation.TemplateIncorrectOrUnapproved", "unapproved"))
    assert {fresh.deliver(n, MOBILE, "", "registration", ["1", "5"]).outcome for n in range(4)} == {"failed"}
    assert fresh.breaker.current_state == "closed"


def test_every_purpose_needs_an_approved_template_at_start_up():
    assert set(PURPOSES) == set(codes.PURPOSES) == {"registration", "password_reset", "ticket_lookup", "sign_in"}
    with pytest.raises(ValueError, match="no approved template for ticket_lookup, sign_in"):
        templates_from_config("registration=1,password_reset=2", "Credence")
    with pytest.raises(ValueError, match="names sign_on, which Credence never texts for"):
        templates_from_config(TEMPLATES + ",sign_on=5", "Credence")
    with pytest.raises(ValueError, match="TemplateId of registration is not a number"):
        templates_from_config(TEMPLATES.replace("100001", "SMS_1"), "Credence")
    with pytest.raises(ValueError, match="no sign name for password_reset"):
        templates_from_config(TEMPLATES, "", "registration=A,ticket_lookup=B,sign_in=C")
    templates = templates_from_config(TEMPLATES, "Credence", "sign_in=考试院")
    assert templates["sign_in"] == tencent_sms.Template("100004", "考试院")
    assert templates["registration"] == tencent_sms.Template("100001", "Credence")


def provider(**settings):
    instance = Sms()
    instance.container = SimpleNamespace(config=settings, dependencies=set())
    return instance


@pytest.mark.parametrize("env", ["development", "staging", "production"])
def test_identity_refuses_to_start_with_a_purpose_without_a_template(monkeypatch, secrets_dir, env):
    monkeypatch.setenv("CREDENCE_ENV", env)
    directory, *_ = secrets_dir
    settings = config(directory, SMS_ADAPTER="tencent_sms", SMS_TENCENT_ENDPOINT="sms.tencentcloudapi.com",
                      SMS_TENCENT_TEMPLATES="registration=100001,password_reset=100002,ticket_lookup=100003")
    with pytest.raises(ValueError, match="no approved template for sign_in"):
        provider(**settings).setup()


def test_unsafe_or_incomplete_settings_refuse_the_start(monkeypatch, secrets_dir, tmp_path):
    directory, *_ = secrets_dir
    monkeypatch.setenv("CREDENCE_ENV", "production")
    with pytest.raises(ValueError, match="must be https in production"):
        tencent_sms.from_config(config(directory))  # http:// is for the emulator
    assert tencent_sms.endpoint_from_config(None, True) == ("https", "sms.tencentcloudapi.com")
    monkeypatch.setenv("CREDENCE_ENV", "development")
    with pytest.raises(ValueError, match="SMS_TENCENT_SDK_APP_ID"):
        tencent_sms.from_config(config(directory, SMS_TENCENT_SDK_APP_ID=""))
    with pytest.raises(ValueError, match="SMS_TENCENT_SECRETS_DIR"):
        tencent_sms.from_config(config(directory, SMS_TENCENT_SECRETS_DIR=""))
    with pytest.raises(ValueError, match="SMS_TENCENT_SECRET_ID"):
        tencent_sms.from_config(config(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="SMS_ADAPTER must be 'dev', 'webhook' or 'tencent_sms'"):
        provider(SMS_ADAPTER="tencent").setup()


def test_the_api_key_rotates_without_a_restart_and_a_broken_update_keeps_the_last_good_one(secrets_dir, caplog):
    directory, secret_id, secret_key = secrets_dir
    store = TencentSecrets(directory, check_interval_seconds=0)
    assert store.get_credential_info() == (secret_id, secret_key, None)
    new_id, new_key = new_secret_pair()
    write_secrets(directory, new_id, new_key)
    assert store.get_credential_info() == (new_id, new_key, None)
    (directory / "SMS_TENCENT_SECRET_KEY").write_text("", "utf-8")  # half written
    with caplog.at_level(logging.ERROR):
        assert store.get_credential_info() == (new_id, new_key, None)
    assert "not reloaded, the last good ones stay" in caplog.text and new_key not in caplog.text
    os.remove(directory / "SMS_TENCENT_SECRET_ID")
    assert store.get_credential_info() == (new_id, new_key, None)


def test_receipts_are_read_as_delivered_or_failed(secrets_dir):
    directory, *_ = secrets_dir
    delivery = tencent_sms.from_config(config(directory))
    recorded = {"PullSmsSendStatusSet": [
        {"UserReceiveTime": 1796600000, "CountryCode": "86", "SubscriberNumber": MOBILE, "PhoneNumber": "+86" + MOBILE,
         "SerialNo": "2640:1", "ReportStatus": "SUCCESS", "Description": "DELIVRD", "SessionContext": "credence-sms-1"},
        {"UserReceiveTime": 0, "CountryCode": "86", "SubscriberNumber": MOBILE, "PhoneNumber": "+86" + MOBILE,
         "SerialNo": "2640:2", "ReportStatus": "FAIL", "Description": "MK:0005", "SessionContext": ""}],
        "RequestId": "x"}

    def pull(request):
        assert (request.SmsSdkAppId, request.Limit) == ("1400006666", 100)
        model = models.PullSmsSendStatusResponse()
        model._deserialize(recorded)
        return model

    delivery.client.PullSmsSendStatus = pull
    assert delivery.pull_receipts() == [
        tencent_sms.Receipt("2640:1", "delivered", "DELIVRD", datetime.fromtimestamp(1796600000, UTC)),
        tencent_sms.Receipt("2640:2", "failed", "MK:0005", None)]
