"""Identity configured with DEGREE_REGISTRY=http, in a real container on SQLite and PostgreSQL, against the degree
registry emulator (services/identity/adapters/degree_registry_emulator.py, speaking docs/degree-registry-contract.md)
on a free port: found -> verified, not found -> proof_required, an outage or an answer that cannot be believed -> 503
with the status unchanged and nothing recorded, the breaker, and both sides' keys rotated without a restart."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519
from nameko.standalone.rpc import ServiceRpcProxy
from prometheus_client import REGISTRY

from credence_common.contracts.errors import ServiceUnavailable
from credence_common.persistence import idempotency
from services.identity.adapters import degree_registry
from services.identity.adapters.degree_registry import (
    HEADER_NONCE,
    LOOKUP_PATH,
    REGISTRY_KEY_ID,
    REGISTRY_SIGNATURE,
    REGISTRY_TIMESTAMP,
    HttpDegreeRegistry,
    KeyStore,
    encode_body,
    response_message,
    signed_request_headers,
    verify,
)
from services.identity.adapters.degree_registry_emulator import DegreeRegistryEmulator, write_credence_keys
from services.identity.dependencies import DegreeRegistry
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_identity import VALID_ID, age_codes, register
from tests.tls import issue_test_authority

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLDER = "王小明"  # registration()'s full_name, with VALID_ID
KNOWN, UNKNOWN = "100011202405000123", "100011202405000999"


@pytest.fixture(scope="module")
def credence_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def emulator(credence_key, tmp_path):
    with DegreeRegistryEmulator({"c1": credence_key.public_key()}) as running:
        write_credence_keys(tmp_path / "degree-registry", {"c1": credence_key},
                            {running.registry_key_id: running.registry_key})
        running.add(KNOWN, HOLDER, VALID_ID, registry_reference="CHSI-2015-000123")
        yield running


@pytest.fixture
def registry(start_service, emulator, tmp_path):
    """Identity with the http registry: one attempt of 1 s per look-up, a breaker that opens after 3 failures."""

    def start(**overrides):
        settings = dict(DEGREE_REGISTRY="http", DEGREE_REGISTRY_URL=emulator.base_url,
                        DEGREE_REGISTRY_SECRETS_DIR=str(tmp_path / "degree-registry"), DEGREE_REGISTRY_KEY_ID="c1",
                        DEGREE_REGISTRY_TIMEOUT_SECONDS=1, DEGREE_REGISTRY_ATTEMPTS=2,
                        DEGREE_REGISTRY_RETRY_BACKOFF_SECONDS=0, DEGREE_REGISTRY_KEY_CHECK_SECONDS=0,
                        DEGREE_REGISTRY_BREAKER_FAILURES=100)
        settings.update(overrides)
        _container, config = start_service(IdentityService, **settings)
        return config

    return start


def candidate(identity, config, **changes) -> tuple[dict, str]:
    age_codes(config["DB_URI"])  # each registration texts a code; the resend interval is not what is tested
    registered = register(identity, degree_upgrade=True, **changes)
    return registered, signed_actor({"subject": registered["candidate_id"], "role": "candidate"})


def submit(identity, actor, number: str) -> dict:
    return identity.submit_prior_education(actor, {"degree_certificate_number": number})


def counted() -> dict[str, float]:
    return {outcome: REGISTRY.get_sample_value("credence_degree_registry_lookups_total", {"outcome": outcome}) or 0.0
            for outcome in degree_registry.OUTCOMES}


def test_a_registered_degree_is_verified_and_an_unknown_one_asks_for_a_proof(registry, emulator):
    config = registry()
    before = counted()
    with rpc_proxy("identity", config) as identity:
        holder, holder_actor = candidate(identity, config)
        assert submit(identity, holder_actor, KNOWN)["prior_education_status"] == "verified"
        other, other_actor = candidate(identity, config, mobile="13912345678", email="li.si@example.com",
                                       resident_id_number="110105197001010011", full_name="李四")
        # the number exists, but not as 李四's degree: not found, and nothing says the number exists
        assert submit(identity, other_actor, KNOWN)["prior_education_status"] == "proof_required"
        assert submit(identity, other_actor, UNKNOWN)["prior_education_status"] == "proof_required"
        submitted = identity.submit_prior_education_proof(other_actor, {"proof_ref": "upload/diploma.pdf"})
        assert submitted["prior_education_status"] == "proof_submitted"
        assert identity.prior_education_of(signed_actor({"subject": "staff-1", "role": "staff"}),
                                           holder["candidate_id"])["registry_result"] == "found"
    after = counted()
    assert (after["found"] - before["found"], after["not_found"] - before["not_found"]) == (1, 2)
    stored = query(config["DB_URI"], "select registry_name, registry_result from prior_education_checks "
                                     "order by created_at")
    assert stored == [("http-degree-registry", "found"), ("http-degree-registry", "not_found"),
                      ("http-degree-registry", "not_found")]
    everything = repr(query(config["DB_URI"], "select * from prior_education_checks"))
    assert KNOWN not in everything and UNKNOWN not in everything
    # personal data crossed in the signed body only, never in the path or the headers the emulator recorded
    assert all(r["path"] == "/v1/degree-lookups" and r["key_id"] == "c1" and r["status"] == 200
               for r in emulator.requests)
    assert HOLDER.encode() in emulator.received_bodies[0] and VALID_ID.encode() in emulator.received_bodies[0]


def status_of(config, candidate_id: str) -> str:
    return query(config["DB_URI"], "select prior_education_status from candidates where candidate_id = :c",
                 c=candidate_id)[0][0]


def test_an_outage_or_an_answer_that_cannot_be_believed_is_a_503_and_changes_nothing(registry, emulator, caplog):
    config = registry()
    faults = emulator.faults
    with rpc_proxy("identity", config) as identity:
        registered, actor = candidate(identity, config)
        for outcome, fault in (("server_error", lambda: setattr(faults, "fail_requests", 2)),
                               ("timeout", lambda: (setattr(faults, "delay_requests", 2),
                                                    setattr(faults, "delay_seconds", 1.5))),
                               ("unreachable", lambda: setattr(faults, "drop_requests", 2)),
                               ("bad_signature", lambda: setattr(faults, "forge_answers", True)),
                               ("bad_signature", lambda: setattr(faults, "unknown_key_id", True)),
                               ("bad_signature", lambda: setattr(faults, "unsigned_answers", True)),
                               ("bad_signature", lambda: setattr(faults, "stale_answers_seconds", 900))):
            fault()
            before = counted()
            with caplog.at_level(logging.WARNING, logger="services.identity.adapters.degree_registry"):
                with pytest.raises(ServiceUnavailable) as unavailable:
                    submit(identity, actor, KNOWN)
            assert unavailable.value.code == "degree_registry_unavailable", outcome
            assert "try again" in unavailable.value.message
            after = counted()
            assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {outcome: 1}
            assert f"({outcome})" in caplog.text
            faults.forge_answers = faults.unknown_key_id = faults.unsigned_answers = False
            faults.stale_answers_seconds = 0
            # a slow answer we stopped waiting for is still being made: let it finish before the next case
            wait_for(lambda: len(emulator.requests) == len(emulator.received_bodies), what="the emulator's answers")
            # the candidate is not pushed into proof_required by an outage, and nothing is recorded
            assert status_of(config, registered["candidate_id"]) == "required"
            assert query(config["DB_URI"], "select count(*) from prior_education_checks") == [(0,)]
        assert not any(secret in caplog.text for secret in (HOLDER, VALID_ID, KNOWN))
        # a transport error on the first attempt only is retried (the look-up only reads): the candidate sees none
        faults.drop_requests = 1
        assert submit(identity, actor, KNOWN)["prior_education_status"] == "verified"
    retried = [r for r in emulator.requests if r["status"] in (0, 200)][-2:]
    assert [r["status"] for r in retried] == [0, 200]


def test_an_outage_is_not_kept_as_the_answer_to_an_idempotency_key(registry, emulator):
    """The look-up runs between two transactions, after the first claimed the Idempotency-Key: a 503 is no answer
    to replay for a day (credence_common/persistence/idempotency.py forget_attempt), so a retry with the same key asks
    the
    registry again, while a real answer is replayed as usual."""
    config = registry()
    with rpc_proxy("identity", config) as identity:
        me, actor = candidate(identity, config)
    request = {"degree_certificate_number": KNOWN}
    headers = idempotency.request_headers("degree-1", f"candidate:{me['candidate_id']}", "submit_prior_education",
                                          "POST", "/api/v1/me/prior-education", json.dumps(request).encode(),
                                          idempotency.gateway_key("test-gateway"))
    with ServiceRpcProxy("identity", {"AMQP_URI": config["AMQP_URI"]}, timeout=30, context_data=headers) as keyed:
        emulator.faults.fail_requests = 2  # both attempts of the first look-up
        with pytest.raises(ServiceUnavailable):
            keyed.submit_prior_education(actor, request)
        checked = keyed.submit_prior_education(actor, request)  # asked again, not the stored 503
        assert checked["prior_education_status"] == "verified"
        assert keyed.submit_prior_education(actor, request) == checked  # replayed: the registry not asked again
    assert len([r for r in emulator.requests if r.get("status") == 200]) == 1


def test_the_breaker_stops_asking_a_failing_registry_and_a_trial_reopens_the_way(registry, emulator):
    config = registry(DEGREE_REGISTRY_BREAKER_FAILURES=2, DEGREE_REGISTRY_BREAKER_RESET_SECONDS=0.5,
                      DEGREE_REGISTRY_ATTEMPTS=1)
    with rpc_proxy("identity", config) as identity:
        registered, actor = candidate(identity, config)
        emulator.faults.fail_requests = 100
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                submit(identity, actor, KNOWN)
        asked = len(emulator.requests)
        before = counted()
        with pytest.raises(ServiceUnavailable) as open_breaker:
            submit(identity, actor, KNOWN)
        assert open_breaker.value.code == "degree_registry_unavailable"
        assert len(emulator.requests) == asked  # refused by the breaker without asking the registry
        assert counted()["circuit_open"] - before["circuit_open"] >= 1
        emulator.faults.fail_requests = 0  # the registry is back: after the reset time a trial gets through

        def verified():
            try:
                return submit(identity, actor, KNOWN)["prior_education_status"] == "verified"
            except ServiceUnavailable:
                return False

        wait_for(verified, what="the breaker's trial look-up")
        assert status_of(config, registered["candidate_id"]) == "verified"


def test_both_sides_keys_rotate_without_a_restart_and_a_forged_answer_is_refused(registry, emulator, tmp_path):
    config = registry()
    secrets_dir = tmp_path / "degree-registry"
    with rpc_proxy("identity", config) as identity:
        _first, first = candidate(identity, config)
        assert submit(identity, first, UNKNOWN)["prior_education_status"] == "proof_required"

        # the registry signs with a new key before we hold it: refused, as a forgery would be
        new_registry_key = emulator.rotate_registry_key("r2")
        with pytest.raises(ServiceUnavailable):
            submit(identity, first, UNKNOWN)
        write_credence_keys(secrets_dir, {}, {"r2": new_registry_key})  # beside r1: picked up, no restart
        assert submit(identity, first, UNKNOWN)["prior_education_status"] == "proof_required"
        assert query(config["DB_URI"], "select count(*) from prior_education_checks") == [(2,)]

        # ours: the registry accepts c1 and c2; we switch to c2 by writing the directory; then c1 is withdrawn
        new_key = ed25519.Ed25519PrivateKey.generate()
        emulator.credence_keys["c2"] = new_key.public_key()
        write_credence_keys(secrets_dir, {"c2": new_key}, {}, active_key_id="c2")
        assert submit(identity, first, UNKNOWN)["prior_education_status"] == "proof_required"
        assert emulator.requests[-1]["key_id"] == "c2"
        del emulator.credence_keys["c1"]
        _second, second = candidate(identity, config, mobile="13912345678", email="li.si@example.com",
                                    resident_id_number="110105197001010011", full_name="李四")
        emulator.add("100011202405000777", "李四", "110105197001010011")
        assert submit(identity, second, "100011202405000777")["prior_education_status"] == "verified"

        # a registry that does not know our key (c1 withdrawn too early) refuses us: a 503, nothing recorded
        (secrets_dir / "active_key_id").write_text("c1\n")
        with pytest.raises(ServiceUnavailable):
            submit(identity, first, UNKNOWN)
        assert emulator.requests[-1]["status"] == 401
    assert query(config["DB_URI"], "select count(*) from prior_education_checks") == [(4,)]


def test_the_emulator_runs_alone_for_staging_with_the_records_it_is_given(tmp_path):
    """``python -m services.identity.adapters.degree_registry_emulator``: writes our side's keys and serves the
    contract."""
    command = [sys.executable, "-m", "services.identity.adapters.degree_registry_emulator",
               "--keys", str(tmp_path / "keys"), "--port", "0", "--record", f"{KNOWN},{HOLDER},{VALID_ID}"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, CREDENCE_ENV="staging"))
    try:
        printed = process.stdout.readline()  # printed once it listens
        url = re.search(r"DEGREE_REGISTRY_URL=(\S+)", printed).group(1)
        client = HttpDegreeRegistry(url, KeyStore(tmp_path / "keys", "c1", 0), timeout_seconds=5)
        assert client.look_up(HOLDER, VALID_ID, KNOWN).found is True
        assert client.look_up(HOLDER, VALID_ID, UNKNOWN).found is False
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_the_emulator_refuses_what_the_contract_says_a_registry_refuses(emulator, credence_key):
    """The registry's side of the contract, as a reference: unknown keys, bad signatures, stale timestamps and
    replayed nonces are refused (signed answers too), and a retry of the same request_id gets the same answer."""
    body = encode_body({"request_id": "3f2c8a4e-6b1d-4f0a-9c7e-2d5b8e1f4a6c", "certificate_number": KNOWN,
                        "holder_name": HOLDER, "resident_id_number": VALID_ID})
    url = emulator.base_url + LOOKUP_PATH

    def post(headers, data=body):
        answer = requests.post(url, data=data, headers=headers, timeout=5)
        signed = response_message(answer.status_code, headers.get(HEADER_NONCE, ""),
                                  answer.headers[REGISTRY_TIMESTAMP], answer.content)
        assert answer.headers[REGISTRY_KEY_ID] == emulator.registry_key_id
        assert verify(emulator.registry_key.public_key(), signed, answer.headers[REGISTRY_SIGNATURE])
        return answer.status_code, answer.json()

    def headers(key=credence_key, key_id="c1", timestamp=None, signed_body=body):
        return signed_request_headers(key_id, key, "POST", LOOKUP_PATH, signed_body,
                                      None if timestamp is None else str(timestamp))

    fresh = headers()
    status, found = post(fresh)
    assert status == 200 and found["result"] == "found" and found["registry_reference"] == "CHSI-2015-000123"
    assert post(fresh) == (409, {"error": {"code": "replayed_nonce", "message": "this nonce was already used"}})
    assert post(headers())[1] == found  # the same request_id, signed afresh: the same answer
    for refused, code in ((headers(timestamp=int(time.time()) - 600), "stale_timestamp"),
                          (headers(key_id="c9"), "unknown_key"),
                          (headers(key=ed25519.Ed25519PrivateKey.generate()), "invalid_signature"),
                          (headers(signed_body=body.replace(KNOWN.encode(), UNKNOWN.encode())), "invalid_signature"),
                          ({}, "signature_missing")):
        status, answer = post(refused)
        assert status == 401 and answer["error"]["code"] == code
    other = encode_body({"request_id": "another", "certificate_number": KNOWN, "holder_name": "李四",
                         "resident_id_number": VALID_ID})
    assert post(headers(signed_body=other), other)[1] == {"request_id": "another", "result": "not_found"}
    assert post(headers(signed_body=b"[]"), b"[]")[0] == 400


def test_in_production_the_registry_is_asked_over_https_only(credence_key, tmp_path, monkeypatch):
    """Production refuses an http:// registry; over TLS (a certificate from a throwaway CA, handed to requests by
    REQUESTS_CA_BUNDLE) the look-up works, and a certificate nobody vouches for is an outage, not an answer."""
    authority = issue_test_authority(tmp_path / "tls")
    emulator = DegreeRegistryEmulator({"c1": credence_key.public_key()})
    url = authority.serve_https(emulator.server)
    with emulator:
        secrets_dir = write_credence_keys(tmp_path / "keys", {"c1": credence_key},
                                          {emulator.registry_key_id: emulator.registry_key})
        emulator.add(KNOWN, HOLDER, VALID_ID)
        monkeypatch.setenv("CREDENCE_ENV", "production")
        settings = {"DEGREE_REGISTRY": "http", "DEGREE_REGISTRY_SECRETS_DIR": str(secrets_dir),
                    "DEGREE_REGISTRY_KEY_ID": "c1", "DEGREE_REGISTRY_ATTEMPTS": 1}
        with pytest.raises(ValueError, match="https:// in production"):
            configured(dict(settings, DEGREE_REGISTRY_URL=url.replace("https://", "http://")))
        client = configured(dict(settings, DEGREE_REGISTRY_URL=url))
        with pytest.raises(ServiceUnavailable):  # the system's CAs do not vouch for the test certificate
            client.look_up(HOLDER, VALID_ID, KNOWN)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(authority.ca_file))
        assert client.look_up(HOLDER, VALID_ID, KNOWN).found is True


def configured(config: dict):
    provider = DegreeRegistry()
    provider.container = SimpleNamespace(config=config)
    provider.setup()
    return provider.registry
