"""Identity configured with SMS_ADAPTER=tencent_sms, in a real container on SQLite and PostgreSQL, against the
Tencent Cloud SMS emulator (services/identity/adapters/sms_emulator.py) on a free port: codes reach Tencent as their
purpose's approved template, an outage loses no code and sends each once after it, permanent refusals are
recorded, receipts are pulled and recorded, and the API key rotates under the running service."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from credence_common.security.crypto import KeyRing
from services.identity.adapters import tencent_sms
from services.identity.adapters.sms import GIVE_UP_AFTER
from services.identity.adapters.sms_emulator import TencentSmsEmulator, new_secret_pair, write_secrets
from services.identity.models import SmsQueue
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy, wait_for
from tests.integration.test_identity import registration

APP_ID = "1400006666"
TEMPLATES = {"registration": "100001", "password_reset": "100002", "ticket_lookup": "100003", "sign_in": "100004"}
MOBILES = ("13812345678", "13912345678", "13712345678", "15012345678", "18612345678")


@pytest.fixture
def tencent(start_service, tmp_path):
    secret_id, secret_key = new_secret_pair()
    secrets_dir = write_secrets(tmp_path / "tencent", secret_id, secret_key)
    emulator = TencentSmsEmulator({secret_id: secret_key}, APP_ID, ("Credence", "考试院"),
                                  {template: 2 for template in TEMPLATES.values()}).start()
    try:
        _container, config = start_service(
            IdentityService, SMS_ADAPTER="tencent_sms", SMS_POLL_INTERVAL=0.05,
            SMS_TENCENT_ENDPOINT=emulator.endpoint, SMS_TENCENT_SECRETS_DIR=str(secrets_dir),
            SMS_TENCENT_SDK_APP_ID=APP_ID, SMS_TENCENT_SIGN_NAME="Credence", SMS_TENCENT_SIGN_NAMES="sign_in=考试院",
            SMS_TENCENT_TEMPLATES=",".join(f"{p}={t}" for p, t in TEMPLATES.items()),
            SMS_TENCENT_TIMEOUT_SECONDS=0.5, SMS_TENCENT_KEY_CHECK_SECONDS=0, SMS_TENCENT_BREAKER_FAILURES=3,
            SMS_TENCENT_BREAKER_RESET_SECONDS=0.5, SMS_TENCENT_RECEIPT_POLL_SECONDS=0.05)
        yield config, emulator, secrets_dir
    finally:
        emulator.stop()


def texts(outcome: str) -> float:
    return REGISTRY.get_sample_value("credence_sms_texts_total", {"adapter": "tencent_sms", "outcome": outcome}) or 0


def ask(identity, mobile: str, purpose: str = "registration", client: str = "10.0.0.1") -> dict:
    return identity.request_mobile_code({"mobile": mobile, "purpose": purpose}, client)


def queue(db_uri: str) -> list[tuple]:
    return query(db_uri, "select message_id, state, attempts, serial_no, last_error from sms_queue "
                         "order by message_id")


def test_a_code_reaches_tencent_as_its_purposes_template_and_its_receipt_is_recorded(tencent):
    config, emulator, _ = tencent
    db = config["DB_URI"]
    delivered_before = texts("delivered")
    with rpc_proxy("identity", config) as identity:
        answer = ask(identity, MOBILES[0])
        assert answer["status"] == "sent"
        sent = wait_for(lambda: emulator.sent_to("+86" + MOBILES[0]), what="the text reached Tencent")[0]
        assert (sent.sdk_app_id, sent.template_id, sent.sign_name) == (APP_ID, "100001", "Credence")
        code, minutes = sent.params
        assert re.fullmatch(r"\d{6}", code) and minutes == "5"
        candidate = identity.register_candidate(registration(code, mobile=MOBILES[0]))
        assert candidate["status"] == "pre_registered"  # the code Tencent carried is the one identity expects
        assert ask(identity, MOBILES[1], "password_reset") == answer  # nobody has that number: no text, same answer
        ask(identity, MOBILES[0], "sign_in")
        signed_in = wait_for(lambda: [s for s in emulator.sent_to("+86" + MOBILES[0]) if s.template_id == "100004"],
                             what="the sign-in text")[0]
        assert signed_in.sign_name == "考试院"  # its own signature (SMS_TENCENT_SIGN_NAMES)
    rows = wait_for(lambda: (r := queue(db)) and all(row[1] == "sent" for row in r) and r, what="both marked sent")
    assert {row[3] for row in rows} == {sent.serial_no, signed_in.serial_no}  # the vendor's SerialNo is kept
    assert {s.session_context for s in emulator.sent} == {f"credence-sms-{row[0]}" for row in rows}
    assert len(emulator.sent) == 2
    stored = repr(query(db, "select * from sms_queue"))
    assert MOBILES[0] not in stored and code not in stored
    assert query(db, "select distinct text_encrypted, params_encrypted from sms_queue") == [("", None)]
    receipts = wait_for(lambda: (r := query(db, "select serial_no, status, description from sms_receipts")) and
                        len(r) == 2 and r, what="both receipts pulled")
    assert sorted(receipts) == sorted([(sent.serial_no, "delivered", "DELIVRD"),
                                       (signed_in.serial_no, "delivered", "DELIVRD")])
    assert not emulator.receipts  # each handed out once, and taken
    assert texts("delivered") - delivered_before == 2


def test_an_outage_loses_no_code_and_each_is_sent_once_after_it(tencent):
    config, emulator, _ = tencent
    db = config["DB_URI"]
    with rpc_proxy("identity", config) as identity:
        healthy = ask(identity, MOBILES[0])
        wait_for(lambda: emulator.sent, what="the first text")
        emulator.faults.outage = True  # Tencent answers 503 to everything
        during = [ask(identity, mobile, client=f"10.0.0.{n}") for n, mobile in enumerate(MOBILES[1:], 2)]
        assert during == [healthy] * 4  # the candidate sees nothing of the outage
        wait_for(lambda: REGISTRY.get_sample_value("credence_sms_breaker_open", {"adapter": "tencent_sms"}) == 1,
                 what="the breaker opened")
        assert len(emulator.sent) == 1
        assert all(state == "pending" for _, state, *_ in queue(db)[1:])  # waiting, not lost
        # recovering, Tencent still stumbles: a stale clock, a timeout, InternalError, RequestLimitExceeded
        emulator.faults.clock_skew_seconds = 600
        emulator.faults.outage = False
        # (the breaker's trial request may be a receipt pull as well as a text)
        wait_for(lambda: emulator.count(code="AuthFailure.SignatureExpire"), what="a stale timestamp refused")
        emulator.faults.delay_seconds, emulator.faults.delay_requests = 1.0, 1
        emulator.faults.internal_errors, emulator.faults.request_limits = 1, 1
        emulator.faults.clock_skew_seconds = 0
        wait_for(lambda: len(emulator.sent) == 5, timeout=30, what="every queued code sent after the outage")
        by_session = Counter(s.session_context for s in emulator.sent)
        assert set(by_session.values()) == {1}  # each exactly once
        assert sorted(s.phone for s in emulator.sent) == sorted("+86" + m for m in MOBILES)
        late = next(s for s in emulator.sent if s.phone == "+86" + MOBILES[4])
        assert identity.register_candidate(registration(late.params[0], mobile=MOBILES[4]))["status"] == \
            "pre_registered"  # a code queued through the outage still works
    wait_for(lambda: all(state == "sent" for _, state, *_ in queue(db)), what="all marked sent")
    assert {"503", "AuthFailure.SignatureExpire", "timeout", "InternalError.OtherError", "RequestLimitExceeded"} <= \
        {code for _, code in emulator.requests}


def test_a_permanent_refusal_is_recorded_failed_and_a_transient_one_is_retried(tencent):
    config, emulator, _ = tencent
    db = config["DB_URI"]
    failed_before, retried_before, undelivered_before = texts("failed"), texts("retried"), texts("undelivered")
    emulator.faults.number_codes["+86" + MOBILES[0]] = ["InvalidParameterValue.IncorrectPhoneNumber"]
    emulator.faults.number_codes["+86" + MOBILES[1]] = ["LimitExceeded.PhoneNumberDailyLimit"]
    emulator.faults.receipt_status = "FAIL"  # the carrier could not deliver the one that is sent
    with rpc_proxy("identity", config) as identity:
        ask(identity, MOBILES[0])
        ask(identity, MOBILES[1])
        wait_for(lambda: [r[1] for r in queue(db)] == ["failed", "sent"], what="one failed, one sent")
        emulator.templates.pop(TEMPLATES["registration"])  # Tencent withdraws the template's approval
        ask(identity, MOBILES[2])
        wait_for(lambda: queue(db)[-1][1] == "failed", what="the unapproved template's text failed")
    rows = queue(db)
    assert [(state, attempts, error) for _, state, attempts, _, error in rows] == [
        ("failed", 1, "InvalidParameterValue.IncorrectPhoneNumber"),  # tried once: asking again cannot help
        ("sent", 2, None),  # the rate limit passed: sent on the retry
        ("failed", 1, "FailedOperation.TemplateIncorrectOrUnapproved")]
    assert texts("failed") - failed_before == 2 and texts("retried") - retried_before == 1
    # a number's rate limit or a refused text is no outage: the breaker never opened
    assert REGISTRY.get_sample_value("credence_sms_breaker_open", {"adapter": "tencent_sms"}) == 0
    assert [s.phone for s in emulator.sent] == ["+86" + MOBILES[1]]
    assert query(db, "select distinct params_encrypted from sms_queue") == [(None,)]
    receipt = wait_for(lambda: query(db, "select q.state, r.status, r.description from sms_receipts r "
                                         "join sms_queue q on q.serial_no = r.serial_no"), what="the failed receipt")
    assert receipt == [("sent", "failed", "MK:0005")]
    wait_for(lambda: texts("undelivered") - undelivered_before == 1, what="the undelivered text counted")


def test_the_api_key_rotates_without_a_restart(tencent):
    config, emulator, secrets_dir = tencent
    db = config["DB_URI"]
    old_id = next(iter(emulator.secrets))
    with rpc_proxy("identity", config) as identity:
        ask(identity, MOBILES[0])
        wait_for(lambda: emulator.sent, what="a text with the first key")
        new_id, new_key = new_secret_pair()
        emulator.secrets[new_id] = new_key  # Tencent (CAM) allows two keys at once while rotating
        write_secrets(secrets_dir, new_id, new_key)
        del emulator.secrets[old_id]  # the old key is disabled
        ask(identity, MOBILES[1])
        wait_for(lambda: len(emulator.sent) == 2, what="a text with the new key")
        assert [s.secret_id for s in emulator.sent] == [old_id, new_id]
        # a mistake in the Secret (a key Tencent does not know): texts wait, nothing is lost, the fix sends them
        wrong_id, wrong_key = new_secret_pair()
        write_secrets(secrets_dir, wrong_id, wrong_key)
        ask(identity, MOBILES[2])
        wait_for(lambda: queue(db)[-1][4] == "AuthFailure.SecretIdNotFound", what="the unknown key refused")
        assert queue(db)[-1][1] == "pending"
        write_secrets(secrets_dir, new_id, new_key)
        wait_for(lambda: len(emulator.sent) == 3, what="the waiting text sent after the fix")
    assert emulator.sent[-1].secret_id == new_id and emulator.sent[-1].phone == "+86" + MOBILES[2]


def test_a_text_still_unsent_after_give_up_after_expires_instead_of_arriving_late(tencent):
    config, emulator, _ = tencent
    db = config["DB_URI"]
    keys = KeyRing.from_spec(config["IDENTITY_DATA_KEYS"], config["IDENTITY_DATA_ACTIVE_KEY_ID"])
    created = utcnow() - GIVE_UP_AFTER - timedelta(seconds=1)  # its code died five minutes ago
    engine = make_engine(db)
    with Session(engine) as session, session.begin():
        session.add(SmsQueue(mobile_encrypted=keys.encrypt(MOBILES[0]), text_encrypted=keys.encrypt("code 123456"),
                             purpose="registration", params_encrypted=keys.encrypt('["123456", "5"]'),
                             created_at=created, next_attempt_at=utcnow(), attempts=3, state="pending"))
    engine.dispose()
    expired_before = texts("expired")
    wait_for(lambda: [r[1] for r in queue(db)] == ["expired"], what="the stale text given up")
    assert not emulator.sent and texts("expired") - expired_before == 1
    assert query(db, "select text_encrypted, params_encrypted from sms_queue") == [("", None)]


def test_in_staging_the_emulator_runs_alone_and_prints_the_settings_that_send_through_it(tmp_path, monkeypatch):
    process = subprocess.Popen([sys.executable, "-m", "services.identity.adapters.sms_emulator", "--secrets",
                                str(tmp_path / "staging"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        printed = process.stdout.readline()
        settings = dict(item.split("=", 1) for item in printed.split("; ", 1)[1].split())
        assert settings["SMS_ADAPTER"] == "tencent_sms"
        monkeypatch.setenv("CREDENCE_ENV", "staging")
        delivery = tencent_sms.from_config(settings)
        assert delivery.deliver(1, MOBILES[0], None, "sign_in", ["123456", "5"]).outcome == "sent"
        assert delivery.pull_receipts()[0].status == "delivered"
    finally:
        process.terminate()
        process.wait(timeout=10)
