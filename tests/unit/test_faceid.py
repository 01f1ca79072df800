"""Tencent Cloud FaceID: TC3-HMAC-SHA256 against the example Tencent Cloud documents (签名方法 v3) and against the
SDK's own signer, the emulator's checks of what the SDK sends, how the vendor's answers become verdicts (or no
verdict), retries, the circuit breaker and the secrets directory. The adapter talks to the emulator in this process
(127.0.0.1); the service around it is tested in tests/integration/test_identity_faceid.py."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest
from tencentcloud.common.sign import Sign

from deploy.journey import wait_until
from services.identity.adapters import faceid
from services.identity.adapters.faceid import (
    VERIFIER_CALLS,
    IdCardCheck,
    SecretStore,
    TencentFaceIdVerifier,
    VerifierUnavailable,
    authorization,
    canonical_request,
    interpret_result,
    parse_authorization,
    parse_endpoint,
    string_to_sign,
)
from services.identity.adapters.faceid_emulator import EmulatedSession, FaceIdEmulator

NAME, ID_NUMBER = "王小明", "11010519491231002X"

# Tencent Cloud's documented example (签名方法 v3): CVM DescribeInstances in ap-guangzhou at 1551113065
DOC_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_HEADERS = [("Content-Type", "application/json; charset=utf-8"), ("Host", "cvm.tencentcloudapi.com")]
DOC_TIMESTAMP = 1551113065


def test_tc3_signing_reproduces_tencent_clouds_documented_example():
    canonical = canonical_request("POST", "/", "", DOC_HEADERS, DOC_PAYLOAD)
    assert canonical == ("POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
                         "content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    to_sign = string_to_sign(DOC_TIMESTAMP, "cvm", canonical)
    assert to_sign == ("TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
                       "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031")
    # the documented keys (the page shows them as ...EXAMPLE, and masked as ...******* in another version)
    assert authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm",
                         DOC_TIMESTAMP, DOC_HEADERS, DOC_PAYLOAD) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168")
    assert faceid.signature("Gu5t9xGARNpq86cd98joQYCN3*******", DOC_TIMESTAMP, "cvm", to_sign) == \
        "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def test_the_date_in_the_scope_is_utc_even_at_midnight_beijing_time():
    # 1551113065 is 2019-02-26 00:44:25 in Beijing; the documented scope says 2019-02-25
    assert faceid.credential_date(DOC_TIMESTAMP) == "2019-02-25"


@pytest.mark.parametrize("seed", range(5))
def test_our_signature_agrees_with_the_sdks_signer_on_generated_vectors(seed):
    import random

    rng = random.Random(seed)
    secret_key = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
    timestamp = 1_700_000_000 + rng.randrange(10 ** 8)
    body = json.dumps({"IdCard": ID_NUMBER, "Name": NAME, "Nonce": rng.random()}).encode()
    canonical = canonical_request("POST", "/", "", [("Content-Type", "application/json"),
                                                    ("Host", "faceid.tencentcloudapi.com")], body)
    to_sign = string_to_sign(timestamp, "faceid", canonical)
    assert faceid.signature(secret_key, timestamp, "faceid", to_sign) == \
        Sign.sign_tc3(secret_key, faceid.credential_date(timestamp), "faceid", to_sign)


def test_an_authorization_header_is_parsed_or_refused():
    parsed = parse_authorization("TC3-HMAC-SHA256 Credential=AKIDx/2026-12-07/faceid/tc3_request, "
                                 "SignedHeaders=content-type;host, Signature=abc")
    assert (parsed.secret_id, parsed.date, parsed.service, parsed.signed_headers, parsed.signature) == (
        "AKIDx", "2026-12-07", "faceid", ("content-type", "host"), "abc")
    for bad in (None, "", "Bearer x", "TC3-HMAC-SHA256 Credential=AKIDx/2026-12-07/faceid, SignedHeaders=host, "
                "Signature=a", "TC3-HMAC-SHA256 Credential=AKIDx/2026-12-07/faceid/tc3_request, Signature=a"):
        assert parse_authorization(bad) is None


def text(**fields) -> dict:
    return {"ErrCode": None, "IdCard": ID_NUMBER, "Name": NAME, **fields}


def test_the_vendors_result_becomes_a_verdict_only_when_it_is_one():
    assert interpret_result(text(ErrCode=0, LiveStatus=0, Comparestatus=0, Sim="92.53"), NAME, ID_NUMBER) == \
        faceid.SessionResult("approved", None, 0.9253, 0)
    assert interpret_result(text(ErrCode=1002), NAME, ID_NUMBER).reason == "liveness_failed"
    assert interpret_result(text(ErrCode=2016, Sim="41.2"), NAME, ID_NUMBER).reason == "face_mismatch"
    assert interpret_result(text(ErrCode=2006), NAME, ID_NUMBER).reason == "registry_mismatch"
    # a pass below the documented threshold of 70, or about someone else, is no pass
    assert interpret_result(text(ErrCode=0, LiveStatus=0, Comparestatus=0, Sim="69.99"), NAME,
                            ID_NUMBER).reason == "face_mismatch"
    assert interpret_result(text(ErrCode=0, Sim="99", IdCard="110105197001010011"), NAME,
                            ID_NUMBER).reason == "document_mismatch"
    # no verdict: not finished or left (17), expired (15), the engine failed (1001, 4, ...)
    assert interpret_result(None, NAME, ID_NUMBER).kind == "pending"
    assert interpret_result(text(), NAME, ID_NUMBER).kind == "pending"
    assert interpret_result(text(ErrCode=17), NAME, ID_NUMBER).kind == "pending"
    assert interpret_result(text(ErrCode=15), NAME, ID_NUMBER).kind == "expired"
    for engine_failure in (1001, 2001, 4, 8):
        assert interpret_result(text(ErrCode=engine_failure), NAME, ID_NUMBER).kind == "inconclusive"


def test_the_registry_checks_verdicts_and_non_verdicts():
    assert IdCardCheck("0").matches and IdCardCheck("0").rejection is None
    assert IdCardCheck("-1").rejection == "registry_mismatch" and IdCardCheck("-5").rejection == "registry_no_record"
    assert IdCardCheck("-2").rejection is None and not IdCardCheck("-3").matches  # cannot be checked online


def test_endpoints_are_a_scheme_and_a_host():
    assert parse_endpoint(None) == ("https", "faceid.tencentcloudapi.com")
    assert parse_endpoint("faceid.tencentcloudapi.com") == ("https", "faceid.tencentcloudapi.com")
    assert parse_endpoint("http://127.0.0.1:8766") == ("http", "127.0.0.1:8766")
    for bad in ("ftp://x", "https://x/path", "https://"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


# --- against the emulator ----------------------------------------------------------------------------------

@pytest.fixture
def emulator():
    with FaceIdEmulator() as running:
        yield running


def adapter(emulator, directory, **options) -> TencentFaceIdVerifier:
    emulator.write_secrets(directory)
    options = {"timeout_seconds": 2, "backoff_seconds": 0.01, "sleep": lambda _s: None, **options}
    return TencentFaceIdVerifier(SecretStore(directory, 0), emulator.rule_id, "https://credence.test/back",
                                 emulator.base_url, **options)


def calls(action: str, outcome: str) -> float:
    return VERIFIER_CALLS.labels(faceid.NAME, action, outcome)._value.get()


def test_the_sdk_signs_what_the_emulator_verifies_through_a_whole_session(emulator, tmp_path):
    verifier = adapter(emulator, tmp_path / "faceid")
    assert verifier.check_id_card(NAME, ID_NUMBER).matches
    opened = verifier.start_session(NAME, ID_NUMBER, "session-1")
    session = emulator.sessions[opened.biz_token]
    assert (session.id_card, session.name, session.extra, session.redirect_url) == (
        ID_NUMBER, NAME, "session-1", "https://credence.test/back")
    assert opened.url == emulator.page_url(opened.biz_token)
    assert verifier.session_result(opened.biz_token, NAME, ID_NUMBER).kind == "pending"
    assert emulator.complete(opened.biz_token, "pass") == f"https://credence.test/back?token={opened.biz_token}"
    assert verifier.session_result(opened.biz_token, NAME, ID_NUMBER).kind == "approved"
    assert [call.code for call in emulator.calls] == ["ok"] * 4


def test_the_sdks_debug_log_of_whole_requests_never_runs(emulator, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # LOG_LEVEL=DEBUG
    adapter(emulator, tmp_path / "faceid").check_id_card(NAME, ID_NUMBER)
    assert ID_NUMBER not in caplog.text and NAME not in caplog.text


def test_the_sdk_trusts_the_ca_bundle_requests_would_over_https(tmp_path, monkeypatch):
    from tests.tls import issue_test_authority

    authority = issue_test_authority(tmp_path / "ca")
    with FaceIdEmulator().serve_https(authority) as emulator:
        assert emulator.base_url.startswith("https://127.0.0.1:")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(VerifierUnavailable) as untrusted:  # certifi's bundle does not know the test CA
            adapter(emulator, tmp_path / "faceid", retries=0).check_id_card(NAME, ID_NUMBER)
        assert untrusted.value.code == "ClientNetworkError"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(authority.ca_file))
        verifier = adapter(emulator, tmp_path / "faceid")
        assert verifier.check_id_card(NAME, ID_NUMBER).matches
        assert verifier.start_session(NAME, ID_NUMBER, "s").url.startswith("https://")


def test_the_emulator_refuses_a_wrong_key_a_stale_timestamp_and_a_wrong_version(emulator, tmp_path):
    verifier = adapter(emulator, tmp_path / "faceid", retries=0)
    emulator.keys[emulator.secret_id] = "not-the-key-we-sign-with"
    with pytest.raises(VerifierUnavailable) as wrong_key:
        verifier.check_id_card(NAME, ID_NUMBER)
    assert wrong_key.value.code == "AuthFailure.SignatureFailure"
    emulator.keys[emulator.secret_id] = emulator.secret_key
    emulator.clock_offset = 301  # our clock five minutes behind theirs
    with pytest.raises(VerifierUnavailable) as stale:
        verifier.check_id_card(NAME, ID_NUMBER)
    assert stale.value.code == "AuthFailure.SignatureExpire"
    emulator.clock_offset = 0
    body = json.dumps({"IdCard": ID_NUMBER, "Name": NAME}).encode()
    now = int(time.time())
    headers = {"Content-Type": "application/json", "Host": emulator.base_url[len("http://"):],
               "X-TC-Action": "IdCardVerification", "X-TC-Timestamp": str(now), "X-TC-Version": "2017-03-12"}
    headers["Authorization"] = authorization(emulator.secret_id, emulator.secret_key, "faceid", now,
                                             [("Content-Type", headers["Content-Type"]), ("Host", headers["Host"])],
                                             body)
    assert emulator.answer(headers, body)[1]["Response"]["Error"]["Code"] == "NoSuchVersion"
    headers["X-TC-Version"] = "2018-03-01"
    assert emulator.answer(headers, body)[1]["Response"]["Result"] == "0"  # our own signer, byte for byte
    assert emulator.answer(headers, body + b" ")[1]["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_reads_are_retried_with_backoff_and_detect_auth_is_not(emulator, tmp_path):
    waits = []
    verifier = adapter(emulator, tmp_path / "faceid", retries=2, backoff_seconds=0.2, sleep=waits.append)
    emulator.faults.internal_errors = 2
    assert verifier.check_id_card(NAME, ID_NUMBER).matches  # third time lucky
    assert waits == [0.2, 0.4]
    emulator.faults.rate_limited = 1
    with pytest.raises(VerifierUnavailable) as refused:
        verifier.start_session(NAME, ID_NUMBER, "s")
    assert refused.value.code == "RequestLimitExceeded" and emulator.sessions == {}
    emulator.faults.http_errors = 3
    with pytest.raises(VerifierUnavailable) as bad_gateway:
        verifier.check_id_card(NAME, ID_NUMBER)
    assert bad_gateway.value.code == "ServerNetworkError"
    emulator.faults.id_card_result = "-4"  # the registry's own service failed: no verdict
    with pytest.raises(VerifierUnavailable):
        verifier.check_id_card(NAME, ID_NUMBER)


def test_a_timeout_is_unavailable_and_never_a_verdict(emulator, tmp_path):
    verifier = adapter(emulator, tmp_path / "faceid", timeout_seconds=0.3, retries=0)
    emulator.faults.delay_requests, emulator.faults.delay_seconds = 1, 1.0
    with pytest.raises(VerifierUnavailable) as timed_out:
        verifier.check_id_card(NAME, ID_NUMBER)
    assert timed_out.value.code == "ClientNetworkError"


def test_the_breaker_opens_after_n_failures_fails_fast_then_closes(emulator, tmp_path, caplog):
    verifier = adapter(emulator, tmp_path / "faceid", retries=0, breaker_failures=2, breaker_reset_seconds=0.2)
    before_open = calls("IdCardVerification", "breaker_open")
    emulator.faults.internal_errors = 10
    caplog.set_level(logging.WARNING, logger="services.identity.adapters.faceid")
    for _ in range(2):
        with pytest.raises(VerifierUnavailable):
            verifier.check_id_card(NAME, ID_NUMBER)
    asked = emulator.count()
    with pytest.raises(VerifierUnavailable) as fast:
        verifier.check_id_card(NAME, ID_NUMBER)
    assert fast.value.code == "BreakerOpen" and emulator.count() == asked  # not even asked
    assert calls("IdCardVerification", "breaker_open") == before_open + 1
    assert faceid.VERIFIER_BREAKER_OPEN.labels(faceid.NAME)._value.get() == 1
    assert "circuit breaker opened" in caplog.text
    assert NAME not in caplog.text and ID_NUMBER not in caplog.text  # no personal data in the log
    emulator.faults.internal_errors = 0

    def trial_call_answered() -> bool:  # after the reset timeout one trial call goes through, and closes it
        try:
            return verifier.check_id_card(NAME, ID_NUMBER).matches
        except VerifierUnavailable as error:
            assert error.code == "BreakerOpen"
            return False

    assert wait_until("the breaker lets a trial call through", trial_call_answered, timeout=5, interval=0.02)
    assert faceid.VERIFIER_BREAKER_OPEN.labels(faceid.NAME)._value.get() == 0


def test_a_refused_session_start_is_unavailable_to_the_candidate_and_an_error_to_the_operator(emulator, tmp_path,
                                                                                               caplog):
    """A refusal of DetectAuth (here an unknown RuleId: our configuration) is not about anything the candidate sent:
    they get what an outage gives (503, later or on site), never a 502 with a traceback; the code is logged."""
    emulator.write_secrets(tmp_path / "faceid")
    verifier = TencentFaceIdVerifier(SecretStore(tmp_path / "faceid", 0), "999", "https://credence.test/back",
                                     emulator.base_url, timeout_seconds=2, sleep=lambda _s: None)
    caplog.set_level(logging.ERROR, logger="services.identity.adapters.faceid")
    with pytest.raises(VerifierUnavailable) as refused:
        verifier.start_session(NAME, ID_NUMBER, "session-1")
    assert refused.value.code == "InvalidParameterValue.RuleIdNotExist"
    assert "RuleIdNotExist" in caplog.text and NAME not in caplog.text and ID_NUMBER not in caplog.text


def test_calls_of_different_candidates_are_not_queued_behind_one_another(emulator, tmp_path, monkeypatch):
    """The breaker locks only to decide and to count (calling(), not call(), which would hold its lock through the
    exchange): a second candidate's call reaches the vendor while the first is still waiting for its answer."""
    verifier = adapter(emulator, tmp_path / "faceid", timeout_seconds=10, retries=0)
    answer, lock, in_flight, most = emulator.answer, threading.Lock(), [0], [0]
    both_arrived = threading.Event()

    def held_until_the_other_arrives(headers, body):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            if in_flight[0] == 2:
                both_arrived.set()
        both_arrived.wait(5)  # serialised calls would each wait here alone, and time out
        try:
            return answer(headers, body)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(emulator, "answer", held_until_the_other_arrives)
    results = []
    callers = [threading.Thread(target=lambda: results.append(verifier.check_id_card(NAME, ID_NUMBER).matches))
               for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert results == [True, True] and most[0] == 2


def test_a_vendor_refusal_does_not_count_against_the_breaker(emulator, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    verifier = adapter(emulator, tmp_path / "faceid", retries=0, breaker_failures=1)
    for _ in range(3):  # an unknown BizToken is a refusal of the request, not an outage
        with pytest.raises(VerifierUnavailable) as refused:
            verifier.session_result("NOT-A-TOKEN", NAME, ID_NUMBER)
        assert refused.value.code == "InvalidParameterValue.BizTokenIllegal"
    assert verifier.breaker.current_state == "closed"
    emulator.sessions["OLD"] = EmulatedSession("OLD", emulator.rule_id, ID_NUMBER, NAME, "https://x", "", 0,
                                               expired=True)
    assert verifier.session_result("OLD", NAME, ID_NUMBER).kind == "expired"
    assert "BizTokenIllegal" in caplog.text and "NOT-A-TOKEN" not in caplog.text  # the code, never the token


def test_a_rotated_key_is_read_without_a_restart_and_a_broken_update_keeps_the_last_good_one(emulator, tmp_path):
    directory = tmp_path / "faceid"
    verifier = adapter(emulator, directory)
    assert verifier.check_id_card(NAME, ID_NUMBER).matches
    new_id, _new_key = emulator.new_key()
    emulator.write_secrets(directory, new_id)
    emulator.disable_key(emulator.secret_id)
    assert verifier.check_id_card(NAME, ID_NUMBER).matches
    (directory / "secret_key").write_text("")  # half-written
    assert verifier.secrets.current().secret_id == new_id
    assert verifier.check_id_card(NAME, ID_NUMBER).matches


def test_a_key_rotated_at_the_vendor_first_is_reread_at_once_on_a_signature_failure(emulator, tmp_path):
    directory = tmp_path / "faceid"
    emulator.write_secrets(directory)
    verifier = TencentFaceIdVerifier(SecretStore(directory, 3600), emulator.rule_id, "https://x", emulator.base_url,
                                     retries=0)  # would not look at the directory again for an hour
    assert verifier.check_id_card(NAME, ID_NUMBER).matches
    new_id, _ = emulator.new_key()
    emulator.write_secrets(directory, new_id)
    os.utime(directory / "secret_key")
    emulator.disable_key(emulator.secret_id)
    assert verifier.check_id_card(NAME, ID_NUMBER).matches
    assert [call.code for call in emulator.calls][-2:] == ["AuthFailure.SecretIdNotFound", "ok"]


def test_a_broken_secrets_directory_or_missing_settings_stop_the_start(tmp_path):
    with pytest.raises(ValueError, match="secret_id"):
        SecretStore(tmp_path / "nowhere")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "secret_id").write_text("AKIDx\n")
    (tmp_path / "s" / "secret_key").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        SecretStore(tmp_path / "s")
    (tmp_path / "s" / "secret_key").write_text("k\n")
    good = {"FACEID_SECRETS_DIR": str(tmp_path / "s"), "FACEID_RULE_ID": "1",
            "FACEID_REDIRECT_URL": "https://exam.example/back"}
    assert faceid.from_config(good, production=True).host == "faceid.tencentcloudapi.com"
    for missing in ("FACEID_SECRETS_DIR", "FACEID_RULE_ID"):
        with pytest.raises(ValueError, match=missing):
            faceid.from_config({**good, missing: ""}, production=False)
    with pytest.raises(ValueError, match="FACEID_ENDPOINT must be https"):
        faceid.from_config({**good, "FACEID_ENDPOINT": "http://127.0.0.1:1"}, production=True)
    with pytest.raises(ValueError, match="FACEID_REDIRECT_URL"):
        faceid.from_config({**good, "FACEID_REDIRECT_URL": "http://exam.example/back"}, production=True)
    assert faceid.from_config({**good, "FACEID_ENDPOINT": "http://127.0.0.1:1"}, production=False).scheme == "http"


def test_tencent_faceid_may_run_in_production_and_the_sandbox_may_not():
    from credence_common.config import adapter_refusal

    production = {"CREDENCE_ENV": "production"}
    assert adapter_refusal("IDENTITY_VERIFIER", "tencent_faceid", production) is None
    assert "refused in production" in adapter_refusal("IDENTITY_VERIFIER", "sandbox", production)


# --- the gateway's routes ----------------------------------------------------------------------------------

class IdentityRpc:
    """identity as the gateway's handlers see it: records each call, answers or refuses as told."""

    def __init__(self, answer=None, refusal=None):
        self.calls, self.answer, self.refusal = [], answer, refusal

    def call(self, service, method, *args):
        self.calls.append((service, method, *args))
        if self.refusal is not None:
            raise self.refusal
        return self.answer


@pytest.fixture
def gateway(monkeypatch):
    from gateway.dispatch import Gateway
    from tests.integration.conftest import TEST_ACTOR_SIGNING_KEY

    monkeypatch.setenv("CREDENCE_ENV", "development")
    return Gateway({"JWT_SECRET": "unit-jwt-secret-of-enough-length-0123456789",
                    "ACTOR_SIGNING_KEY": TEST_ACTOR_SIGNING_KEY, "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/"},
                   "development")


def ask(gateway, name: str, role: str | None, body: bytes, rpc) -> tuple[int, dict]:
    from gateway.api import ROUTES
    from gateway.dispatch import Incoming, dispatch

    route = next(r for r in ROUTES if r.name == name)
    headers = {"Authorization": f"Bearer {gateway.tokens.issue('cand-1', role)['access_token']}"} if role else {}
    request = Incoming(method=route.method, path=route.path, headers=headers, remote_addr="10.0.0.1",
                       content_length=len(body))
    answer = dispatch(gateway, route, request, {}, lambda _n: body, rpc=rpc, context={})
    return answer.status, json.loads(answer.body)


def test_the_gateway_starts_and_confirms_the_callers_own_session_and_answers_an_outage_503(gateway):
    from credence_common.contracts.errors import ServiceUnavailable
    from services.identity.usecases import liveness

    session = {"session_id": "s-1", "url": "https://faceid.example/h5/T", "verifier": "tencent_faceid",
               "expires_at": "2026-12-10T00:00:00Z"}
    rpc = IdentityRpc(session)
    assert ask(gateway, "start_my_identity_session", "candidate", b"", rpc) == (201, session)
    assert rpc.calls[0][:2] == ("identity", "start_identity_session") and rpc.calls[0][3] == "cand-1"
    rpc = IdentityRpc({"status": "confirmed"})
    assert ask(gateway, "confirm_my_identity_session", "candidate", b'{"biz_token": "T-1"}', rpc)[0] == 200
    assert rpc.calls[0][3:] == ("cand-1", {"biz_token": "T-1"})  # the subject is the token's, never the body's

    down = IdentityRpc(refusal=liveness.unavailable())
    status, body = ask(gateway, "start_my_identity_session", "candidate", b"", down)
    assert status == 503 and body["error"]["code"] == "identity_verifier_unavailable"
    assert "on site" in body["error"]["message"]
    assert isinstance(liveness.unavailable(), ServiceUnavailable)

    untouched = IdentityRpc()
    assert ask(gateway, "confirm_my_identity_session", "candidate", b'{"biz_token": "../../x"}', untouched)[0] == 422
    assert ask(gateway, "confirm_my_identity_session", "candidate", b'{"biz_token": "T", "candidate_id": "b"}',
               untouched)[0] == 422  # nobody else's candidate id rides along
    assert ask(gateway, "start_my_identity_session", "staff", b"", untouched)[0] == 403
    assert ask(gateway, "start_my_identity_session", None, b"", untouched)[0] == 401
    assert untouched.calls == []


def test_the_session_routes_are_rate_limited_and_starting_one_is_never_replayed():
    from gateway.api import ROUTES

    routes = {r.name: r for r in ROUTES}
    assert routes["start_my_identity_session"].rate_limited and routes["confirm_my_identity_session"].rate_limited
    assert routes["start_my_identity_session"].replayable is False  # its url holds the session's token
