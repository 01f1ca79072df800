"""Identity configured with IDENTITY_VERIFIER=tencent_faceid, in a real container on SQLite and PostgreSQL, against
the Tencent Cloud FaceID emulator (services/identity/adapters/faceid_emulator.py) on a free port: the registry check and
the liveness session to a ticket number, mismatches and spoofs recorded as rejections, tokens that are someone else's
or used up refused, an outage answered 503 with nothing recorded, the circuit breaker opening and closing, and the
API key rotated under the running service."""

from __future__ import annotations

import json
import re

import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from credence_common.contracts.errors import Conflict, InvalidInput, NotFound, RateLimited, ServiceUnavailable
from credence_common.persistence import idempotency
from services.identity.adapters import faceid
from services.identity.adapters.faceid_emulator import FaceIdEmulator
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_identity import CANDIDATE, VALID_ID, register

REDIRECT = "https://credence.test/identity/liveness-done"
STAFF = signed_actor({"subject": "staff:wang", "role": "staff"})


@pytest.fixture
def emulator():
    with FaceIdEmulator(rule_id="7") as running:
        yield running


@pytest.fixture
def identity_faceid(start_service, emulator, tmp_path):
    emulator.write_secrets(tmp_path / "faceid")
    _container, config = start_service(
        IdentityService, IDENTITY_VERIFIER="tencent_faceid", FACEID_SECRETS_DIR=str(tmp_path / "faceid"),
        FACEID_ENDPOINT=emulator.base_url, FACEID_RULE_ID="7", FACEID_REDIRECT_URL=REDIRECT,
        FACEID_TIMEOUT_SECONDS=1, FACEID_RETRIES=1, FACEID_RETRY_BACKOFF_SECONDS=0.05, FACEID_BREAKER_FAILURES=4,
        FACEID_BREAKER_RESET_SECONDS=1, FACEID_KEY_CHECK_SECONDS=0,
        FACEID_MAX_SESSIONS_PER_DAY=50)  # the daily limit has its own test
    return config, emulator


def candidate(identity, **changes) -> tuple[dict, str]:
    registered = register(identity, **changes)
    return registered, signed_actor(dict(CANDIDATE, subject=registered["candidate_id"]))


def live(emulator, url: str, outcome: str) -> str:
    """The candidate in the vendor's page: the token it sends them back with."""
    answer = requests.post(url, data={"outcome": outcome}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT + "?token=")
    return answer.headers["Location"].split("token=", 1)[1]


def test_a_passed_liveness_session_confirms_once_with_one_ticket_number(identity_faceid):
    config, emulator = identity_faceid
    db = config["DB_URI"]
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        session = identity.start_identity_session(actor, me["candidate_id"])
        assert session["verifier"] == "tencent_faceid" and session["url"].startswith(emulator.base_url + "/h5/")
        opened = next(iter(emulator.sessions.values()))
        assert (opened.id_card, opened.name, opened.rule_id, opened.extra, opened.redirect_url) == (
            VALID_ID, "王小明", "7", session["session_id"], REDIRECT)
        token = live(emulator, session["url"], "pass")
        confirmed = identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert confirmed["status"] == "confirmed" and confirmed["confirmation_method"] == "online"
        assert re.fullmatch(r"1126\d{7}[\dX]", confirmed["ticket_number"])
        again = identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})  # double click
        assert again["ticket_number"] == confirmed["ticket_number"]
        with pytest.raises(Conflict) as done:
            identity.start_identity_session(actor, me["candidate_id"])
        assert done.value.code == "already_confirmed"
    assert [c.action for c in emulator.calls] == ["IdCardVerification", "DetectAuth", "GetDetectInfoEnhanced"]
    assert query(db, "select method, verifier, decision, liveness_ref, face_match_score from identity_confirmations") \
        == [("online", "tencent_faceid", "approved", f"tencent_faceid:{session['session_id']}", 0.9253)]
    assert query(db, "select status from identity_liveness_sessions") == [("approved",)]
    stored = repr(query(db, "select * from identity_liveness_sessions"))
    assert token not in stored and VALID_ID not in stored  # the BizToken is kept encrypted


def test_registry_mismatch_spoof_and_face_mismatch_are_rejections_and_the_candidate_may_try_again(identity_faceid):
    config, emulator = identity_faceid
    db = config["DB_URI"]
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        emulator.faults.id_card_result = "-1"
        with pytest.raises(InvalidInput) as mismatch:
            identity.start_identity_session(actor, me["candidate_id"])
        assert mismatch.value.code == "identity_registry_mismatch" and "on site" in mismatch.value.message
        assert emulator.sessions == {}  # no liveness session for a name and number that do not match
        view = identity.get_candidate(actor, me["candidate_id"])
        assert (view["status"], view["rejection_reason"]) == ("rejected", "registry_mismatch")
        emulator.faults.id_card_result = "-3"  # a name the registry cannot check: no verdict, nothing recorded
        with pytest.raises(InvalidInput) as unusable:
            identity.start_identity_session(actor, me["candidate_id"])
        assert unusable.value.code == "online_check_not_possible"
        emulator.faults.id_card_result = None

        rejections = []
        for outcome in ("spoof", "face_mismatch"):
            session = identity.start_identity_session(actor, me["candidate_id"])
            token = live(emulator, session["url"], outcome)
            rejected = identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
            rejections.append(rejected["rejection_reason"])
            assert rejected["status"] == "rejected" and rejected["ticket_number"] is None
            with pytest.raises(Conflict) as used:  # one decision per session
                identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
            assert used.value.code == "liveness_session_used"
        assert rejections == ["liveness_failed", "face_mismatch"]

        token = live(emulator, identity.start_identity_session(actor, me["candidate_id"])["url"], "engine_error")
        with pytest.raises(Conflict) as inconclusive:  # the vendor's engine failed: no verdict, a new session
            identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert inconclusive.value.code == "liveness_inconclusive"
        assert identity.get_candidate(actor, me["candidate_id"])["rejection_reason"] == "face_mismatch"  # unchanged

        session = identity.start_identity_session(actor, me["candidate_id"])
        token = live(emulator, session["url"], "abandoned")  # left the page: no verdict, the session stays open
        with pytest.raises(Conflict) as unfinished:
            identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert unfinished.value.code == "liveness_not_completed"
        emulator.complete(token, "pass")  # came back and finished it
        assert identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})["status"] == \
            "confirmed"
    assert ("inconclusive",) in query(db, "select status from identity_liveness_sessions")
    assert query(db, "select decision, reason from identity_confirmations order by decided_at") == [
        ("rejected", "registry_mismatch"), ("rejected", "liveness_failed"), ("rejected", "face_mismatch"),
        ("approved", None)]


def test_a_token_of_another_candidate_or_unknown_is_refused_as_not_found(identity_faceid):
    config, emulator = identity_faceid
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        other, other_actor = candidate(identity, mobile="13912345678", email="li.si@example.com",
                                       resident_id_number="110105197001010011", full_name="李四")
        token = live(emulator, identity.start_identity_session(actor, me["candidate_id"])["url"], "pass")
        for who, whose in ((other_actor, other["candidate_id"]), (actor, me["candidate_id"])):
            with pytest.raises(NotFound) as refused:
                identity.confirm_identity_session(who, whose, {"biz_token": token if who == other_actor
                                                               else "F00D-NOT-OURS"})
            assert refused.value.code == "liveness_session_not_found"
        assert identity.get_candidate(other_actor, other["candidate_id"])["status"] == "pre_registered"
        confirmed = identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert confirmed["status"] == "confirmed"
        with pytest.raises(NotFound):  # nor after it was used
            identity.confirm_identity_session(other_actor, other["candidate_id"], {"biz_token": token})
        with pytest.raises(Conflict) as evidence:  # the sandbox's evidence references are not taken here
            identity.confirm_identity(other_actor, other["candidate_id"], {"id_card_image_ref": "c",
                                                                           "liveness_ref": "l"})
        assert evidence.value.code == "liveness_session_required"


def test_an_outage_is_503_nothing_is_recorded_and_on_site_confirmation_still_works(identity_faceid):
    config, emulator = identity_faceid
    db = config["DB_URI"]
    unavailable = faceid.VERIFIER_CALLS.labels(faceid.NAME, "IdCardVerification", "unavailable")._value.get()
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        for fault in ("internal_errors", "http_errors", "rate_limited"):
            setattr(emulator.faults, fault, 2)  # the first try and its one retry
            with pytest.raises(ServiceUnavailable) as down:
                identity.start_identity_session(actor, me["candidate_id"])
            assert down.value.code == "identity_verifier_unavailable"
            assert "on site at an exam centre" in down.value.message and "Nothing was recorded" in down.value.message
        assert faceid.VERIFIER_CALLS.labels(faceid.NAME, "IdCardVerification", "unavailable")._value.get() == \
            unavailable + 3
        session = identity.start_identity_session(actor, me["candidate_id"])  # the vendor is back
        token = live(emulator, session["url"], "pass")
        emulator.faults.delay_requests, emulator.faults.delay_seconds = 2, 1.5  # past FACEID_TIMEOUT_SECONDS
        with pytest.raises(ServiceUnavailable):
            identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert identity.get_candidate(actor, me["candidate_id"])["status"] == "pre_registered"
        assert query(db, "select count(*) from identity_confirmations") == [(0,)]
        assert query(db, "select status from identity_liveness_sessions") == [("open",)]
        wait_for(lambda: emulator.faults.delay_requests == 0, what="the slow answers")
        emulator.faults.internal_errors = 50  # down again: staff confirm on site meanwhile
        on_site = identity.confirm_identity_on_site(STAFF, me["candidate_id"], {"decision": "approve"})
        assert on_site["status"] == "confirmed" and on_site["confirmation_method"] == "on_site"
        # the session's result, once the vendor answers, does not give a second ticket number
        emulator.faults.internal_errors = 0
        again = identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})
        assert again["ticket_number"] == on_site["ticket_number"] and again["confirmation_method"] == "on_site"


def test_an_outage_is_not_kept_as_the_answer_to_an_idempotency_key(identity_faceid):
    """A retry with the same Idempotency-Key after an outage asks the vendor again: "unavailable" is no answer to
    replay (credence_common/persistence/idempotency.py forget_attempt), while a real decision is replayed as usual."""
    config, emulator = identity_faceid
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        token = live(emulator, identity.start_identity_session(actor, me["candidate_id"])["url"], "pass")
    request = {"biz_token": token}
    headers = idempotency.request_headers("confirm-1", f"candidate:{me['candidate_id']}", "confirm_my_identity_session",
                                          "POST", "/api/v1/me/identity-confirmation/sessions/confirmation",
                                          json.dumps(request).encode(), idempotency.gateway_key("test-gateway"))
    with ServiceRpcProxy("identity", {"AMQP_URI": config["AMQP_URI"]}, timeout=30, context_data=headers) as keyed:
        emulator.faults.internal_errors = 2
        with pytest.raises(ServiceUnavailable):
            keyed.confirm_identity_session(actor, me["candidate_id"], request)
        confirmed = keyed.confirm_identity_session(actor, me["candidate_id"], request)  # asked again, not replayed
        assert confirmed["status"] == "confirmed"
        assert keyed.confirm_identity_session(actor, me["candidate_id"], request) == confirmed
    assert emulator.count("GetDetectInfoEnhanced") == 3  # the failed try, its retry, and the one that answered


def test_the_breaker_opens_after_repeated_failures_fails_fast_and_closes_after_its_reset(identity_faceid):
    config, emulator = identity_faceid
    fast = faceid.VERIFIER_CALLS.labels(faceid.NAME, "IdCardVerification", "breaker_open")
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        emulator.faults.internal_errors = 1000
        for _ in range(4):  # FACEID_BREAKER_FAILURES
            with pytest.raises(ServiceUnavailable):
                identity.start_identity_session(actor, me["candidate_id"])
        asked, before = emulator.count(), fast._value.get()
        with pytest.raises(ServiceUnavailable) as open_breaker:
            identity.start_identity_session(actor, me["candidate_id"])
        assert open_breaker.value.code == "identity_verifier_unavailable"
        assert emulator.count() == asked and fast._value.get() == before + 1  # failed fast: the vendor not asked
        assert faceid.VERIFIER_BREAKER_OPEN.labels(faceid.NAME)._value.get() == 1
        emulator.faults.internal_errors = 0

        def starts():
            try:
                return identity.start_identity_session(actor, me["candidate_id"])
            except ServiceUnavailable:
                return None

        assert wait_for(starts, timeout=10, interval=0.2, what="the breaker to let a trial call through")["url"]
        assert faceid.VERIFIER_BREAKER_OPEN.labels(faceid.NAME)._value.get() == 0
    assert query(config["DB_URI"], "select count(*) from identity_confirmations") == [(0,)]


def test_the_api_key_rotates_without_a_restart(identity_faceid, tmp_path):
    config, emulator = identity_faceid
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        identity.start_identity_session(actor, me["candidate_id"])
        new_id, _new_key = emulator.new_key()  # CAM: a second key beside the first
        emulator.write_secrets(tmp_path / "faceid", new_id)  # the mounted Secret is updated
        emulator.disable_key(emulator.secret_id)  # then the old key is disabled
        session = identity.start_identity_session(actor, me["candidate_id"])
        token = live(emulator, session["url"], "pass")
        assert identity.confirm_identity_session(actor, me["candidate_id"], {"biz_token": token})["status"] == \
            "confirmed"
    assert "AuthFailure.SecretIdNotFound" not in [c.code for c in emulator.calls]


def test_the_sandbox_offers_no_liveness_sessions(start_service):
    _container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        for call, args in ((identity.start_identity_session, ()),
                           (identity.confirm_identity_session, ({"biz_token": "T"},))):
            with pytest.raises(Conflict) as refused:
                call(actor, me["candidate_id"], *args)
            assert refused.value.code == "liveness_sessions_not_offered"


def test_a_candidate_opens_at_most_the_daily_number_of_sessions(start_service, emulator, tmp_path):
    emulator.write_secrets(tmp_path / "faceid")
    _container, config = start_service(
        IdentityService, IDENTITY_VERIFIER="tencent_faceid", FACEID_SECRETS_DIR=str(tmp_path / "faceid"),
        FACEID_ENDPOINT=emulator.base_url, FACEID_RULE_ID="7", FACEID_REDIRECT_URL=REDIRECT,
        FACEID_MAX_SESSIONS_PER_DAY=3)
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity)
        # an outage books nothing; a refused registry check (billed) counts like a session
        emulator.faults.internal_errors = 3  # the call and its two retries
        with pytest.raises(ServiceUnavailable):
            identity.start_identity_session(actor, me["candidate_id"])
        emulator.faults.internal_errors, emulator.faults.id_card_result = 0, "-2"
        with pytest.raises(InvalidInput) as not_checkable:
            identity.start_identity_session(actor, me["candidate_id"])
        assert not_checkable.value.code == "online_check_not_possible"
        emulator.faults.id_card_result = None
        for _ in range(2):
            identity.start_identity_session(actor, me["candidate_id"])
        asked = emulator.count()
        with pytest.raises(RateLimited) as limited:
            identity.start_identity_session(actor, me["candidate_id"])
        assert limited.value.code == "identity_session_daily_limit" and limited.value.retry_after_seconds > 0
        assert emulator.count() == asked  # refused before the vendor is asked (each session is billed)
    assert sorted(query(config["DB_URI"], "select status from identity_liveness_sessions")) == [
        ("open",), ("open",), ("refused",)]
