"""The degree registry contract (docs/degree-registry-contract.md): its worked example's vectors, the signed
messages, answers parsed or refused, keys reread from the secrets directory, and the adapter's retries, breaker,
metric and logs against a fake transport (no network: the HTTP side meets the emulator in
tests/integration/test_identity_degree_registry.py)."""

from __future__ import annotations

import base64
import logging
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import REGISTRY
from requests.structures import CaseInsensitiveDict

from credence_common.contracts.errors import ServiceUnavailable
from services.identity.adapters import degree_registry
from services.identity.adapters.degree_registry import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    REGISTRY_KEY_ID,
    REGISTRY_SIGNATURE,
    REGISTRY_TIMESTAMP,
    HttpDegreeRegistry,
    KeyStore,
    RegistryFailure,
    SandboxDegreeRegistry,
    body_digest,
    load_keys,
    parse_answer,
    request_message,
    response_message,
    sign,
    signed_request_headers,
    verify,
)
from services.identity.adapters.degree_registry_emulator import pem_public, write_credence_keys
from services.identity.dependencies import DegreeRegistry

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "degree-registry-contract.md"
NAME, RESIDENT_ID, NUMBER = "李四", "110105197001010011", "100011202405000123"


def contract_vectors() -> dict[str, str]:
    text = CONTRACT.read_text("utf-8")
    block = re.search(r"<!-- degree-registry-test-vectors -->\n```text\n(.*?)\n```", text, re.S).group(1)
    return dict(line.split(": ", 1) for line in block.splitlines())


def seed_key(hex_seed: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(hex_seed))


def test_the_contracts_worked_example_verifies():
    v = contract_vectors()
    credence = seed_key(v["credence private key seed (RFC 8032 test 1)"])
    registry = seed_key(v["registry private key seed (RFC 8032 test 2)"])
    assert v["credence public key (SPKI PEM body)"] in pem_public(credence).decode()
    assert v["registry public key (SPKI PEM body)"] in pem_public(registry).decode()
    # RFC 8032 test 1's public key, so the seed is read as everyone reads it
    assert credence.public_key().public_bytes_raw().hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

    body = v["request body"].encode("utf-8")
    assert body_digest(body) == v["request body sha-256"]
    message = request_message("POST", v["request path"], v["request timestamp"], v["request nonce"], body)
    assert message.decode().split("\n") == ["credence-degree-registry/v1 request", "POST", v["request path"],
                                            v["request timestamp"], v["request nonce"], v["request body sha-256"]]
    assert sign(credence, message) == v["request signature"]  # Ed25519 is deterministic: fixed bytes
    headers = signed_request_headers(v["credence key id"], credence, "POST", v["request path"], body,
                                     v["request timestamp"], v["request nonce"])
    assert headers["Credence-Signature"] == v["request signature"] and headers[HEADER_KEY_ID] == "c1-test"

    for kind in ("found", "not_found"):
        answer = v[f"{kind} body"].encode("utf-8")
        assert body_digest(answer) == v[f"{kind} body sha-256"]
        signed = response_message(int(v["response status"]), v["request nonce"], v["response timestamp"], answer)
        assert sign(registry, signed) == v[f"{kind} signature"]
        assert verify(registry.public_key(), signed, v[f"{kind} signature"])
    found = parse_answer(v["found body"].encode(), "3f2c8a4e-6b1d-4f0a-9c7e-2d5b8e1f4a6c", "r")
    assert (found.found, found.level, found.institution, found.graduation_date.isoformat(), found.reference) == (
        True, "bachelor", "北京大学", "2015-07-01", "CHSI-2015-000123")


def test_a_signature_covers_method_path_timestamp_nonce_and_body_and_an_answer_its_request():
    key = ed25519.Ed25519PrivateKey.generate()
    body = b'{"certificate_number":"1"}'
    base = ("POST", "/v1/degree-lookups", "1767225600", "0" * 32, body)
    signature = sign(key, request_message(*base))
    assert verify(key.public_key(), request_message(*base), signature)
    for changed in (("GET", *base[1:]), (base[0], "/v2/degree-lookups", *base[2:]),
                    (*base[:2], "1767225601", *base[3:]), (*base[:3], "1" * 32, body),
                    (*base[:4], b'{"certificate_number":"2"}')):
        assert not verify(key.public_key(), request_message(*changed), signature)
    assert not verify(ed25519.Ed25519PrivateKey.generate().public_key(), request_message(*base), signature)
    assert not verify(key.public_key(), request_message(*base), "not base64!")
    assert not verify(key.public_key(), request_message(*base), None)
    answer = sign(key, response_message(200, "a" * 32, "1767225601", b"{}"))
    assert not verify(key.public_key(), response_message(200, "b" * 32, "1767225601", b"{}"), answer)  # other request
    assert not verify(key.public_key(), response_message(503, "a" * 32, "1767225601", b"{}"), answer)  # other status


@pytest.mark.parametrize("content, why", [
    (b"[]", "not a JSON object"), (b"not json", "not a JSON object"),
    (b'{"request_id":"other","result":"found"}', "another request_id"),
    (b'{"request_id":"R","result":"maybe"}', "neither found nor not_found"),
    (b'{"request_id":"R"}', "neither found nor not_found"),
    (b'{"request_id":"R","result":"found","degree":"yes"}', "degree is not an object"),
    (b'{"request_id":"R","result":"found","degree":{"graduation_date":"July 2015"}}', "YYYY-MM-DD"),
    (b'{"request_id":"R","result":"found","degree":{"level":7}}', "level is not a string"),
])
def test_an_answer_that_is_not_the_contracts_is_invalid_never_not_found(content, why):
    with pytest.raises(RegistryFailure, match=why) as failed:
        parse_answer(content, "R", "r")
    assert failed.value.outcome == "invalid_response"


def test_a_bare_answer_is_enough():
    assert parse_answer(b'{"request_id":"R","result":"found"}', "R", "r").found is True
    assert parse_answer(b'{"request_id":"R","result":"not_found","degree":{"level":"x"}}', "R", "r").found is False


@pytest.fixture
def credence_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def registry_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def secrets_dir(tmp_path, credence_key, registry_key):
    return write_credence_keys(tmp_path / "degree-registry", {"c1": credence_key}, {"r1": registry_key})


def test_keys_rotate_without_a_restart_and_a_broken_update_keeps_the_last_good_keys(secrets_dir, caplog):
    store = KeyStore(secrets_dir, "c1", check_interval_seconds=0)
    assert store.keys().signing_key_id == "c1" and set(store.keys().registry_keys) == {"r1"}
    # ours: a second key, then the switch, written into the directory (no restart, no setting changed)
    write_credence_keys(secrets_dir, {"c2": ed25519.Ed25519PrivateKey.generate()}, {}, active_key_id="c2")
    assert store.keys().signing_key_id == "c2"
    # theirs: a new registry key beside the old; an unknown id forces a reread even between checks
    slow = KeyStore(secrets_dir, "c1", check_interval_seconds=3600)
    write_credence_keys(secrets_dir, {}, {"r2": ed25519.Ed25519PrivateKey.generate()})
    assert slow.registry_key("r2") is not None and slow.registry_key("r1") is not None
    # a half-written key: logged, and the last good keys stay
    (secrets_dir / "signing" / "c2.pem").write_text("-----BEGIN PRIVATE KEY-----\ntrunc")
    os.utime(secrets_dir / "signing" / "c2.pem", ns=(time.time_ns() + 10**9,) * 2)
    with caplog.at_level(logging.ERROR, logger="services.identity.adapters.degree_registry"):
        assert store.keys().signing_key_id == "c2"
    assert "not reloaded, the last good ones stay" in caplog.text and "PRIVATE" not in caplog.text


def test_the_active_key_id_may_travel_with_the_signing_keys(secrets_dir):
    """On Kubernetes signing/ and registry/ are two Secret volumes: the signing Secret names its active key."""
    store = KeyStore(secrets_dir, "c1", check_interval_seconds=0)
    write_credence_keys(secrets_dir, {"c2": ed25519.Ed25519PrivateKey.generate()}, {})
    (secrets_dir / "signing" / "active_key_id").write_text("c2\n")
    assert store.keys().signing_key_id == "c2"
    (secrets_dir / "active_key_id").write_text("c1\n")  # one beside signing/ wins
    assert store.keys().signing_key_id == "c1"


@pytest.mark.parametrize("breakage, named", [
    (lambda d: (d / "signing" / "c1.pem").unlink(), "c1.pem"),
    (lambda d: [p.unlink() for p in (d / "registry").glob("*.pem")], "no registry public key"),
    (lambda d: (d / "registry" / "r1.pem").write_bytes(pem_public(ed25519.Ed25519PrivateKey.generate())[:40]),
     "r1"),
    (lambda d: (d / "active_key_id").write_text("../c1\n"), "is not 1-64"),
])
def test_a_broken_secrets_directory_stops_the_start(secrets_dir, breakage, named):
    breakage(secrets_dir)
    with pytest.raises(ValueError, match=re.escape(named)):
        load_keys(secrets_dir, "c1")


def test_a_signing_key_id_is_needed(secrets_dir):
    with pytest.raises(ValueError, match="DEGREE_REGISTRY_KEY_ID is empty"):
        load_keys(secrets_dir, "")


def provider(**config) -> DegreeRegistry:
    instance = DegreeRegistry()
    instance.container = SimpleNamespace(config=config, dependencies=set())
    return instance


def test_the_registry_is_chosen_by_configuration_and_refuses_unsafe_settings(secrets_dir, monkeypatch):
    http = dict(DEGREE_REGISTRY="http", DEGREE_REGISTRY_URL="https://registry.example.edu.cn/credence",
                DEGREE_REGISTRY_SECRETS_DIR=str(secrets_dir), DEGREE_REGISTRY_KEY_ID="c1")
    monkeypatch.setenv("CREDENCE_ENV", "production")
    chosen = provider(**http)
    chosen.setup()
    assert isinstance(chosen.registry, HttpDegreeRegistry)
    assert chosen.registry.url == "https://registry.example.edu.cn/credence/v1/degree-lookups"
    assert chosen.registry.path == "/credence/v1/degree-lookups"  # what is signed: the whole path
    with pytest.raises(ValueError, match="must be https:// in production"):
        provider(**dict(http, DEGREE_REGISTRY_URL="http://127.0.0.1:8766")).setup()
    with pytest.raises(ValueError, match="refused in production"):
        provider(DEGREE_REGISTRY="sandbox").setup()
    with pytest.raises(ValueError, match="needs DEGREE_REGISTRY_URL"):
        provider(**dict(http, DEGREE_REGISTRY_URL="")).setup()
    with pytest.raises(ValueError, match="needs DEGREE_REGISTRY_SECRETS_DIR"):
        provider(**dict(http, DEGREE_REGISTRY_SECRETS_DIR="")).setup()
    with pytest.raises(ValueError, match="one of sandbox, http"):
        provider(DEGREE_REGISTRY="chsi").setup()
    monkeypatch.setenv("CREDENCE_ENV", "staging")  # staging may point at the emulator over http
    staging = provider(**dict(http, DEGREE_REGISTRY_URL="http://127.0.0.1:8766"))
    staging.setup()
    assert staging.registry.url == "http://127.0.0.1:8766/v1/degree-lookups"
    sandbox = provider()
    sandbox.setup()
    assert isinstance(sandbox.registry, SandboxDegreeRegistry)


# --- the adapter against a fake transport -------------------------------------------------------------

class FakeRegistry:
    """Answers as the contract says, or as a test step says (a list of what each call does)."""

    def __init__(self, registry_key, steps=None):
        self.registry_key = registry_key
        self.steps = list(steps or [])
        self.calls: list[dict] = []

    def post(self, url, data, headers, timeout, allow_redirects):
        self.calls.append({"url": url, "body": data, "headers": dict(headers)})
        step = self.steps.pop(0) if self.steps else "found"
        if isinstance(step, Exception):
            raise step
        return step(self, data, headers) if callable(step) else self.answer(data, headers, step)

    def answer(self, body, headers, result, status=200, signed=True, key=None, key_id="r1", nonce=None,
               timestamp=None, request_id=None):
        import json
        document = json.loads(body)
        payload = json.dumps({"request_id": request_id or document["request_id"], "result": result}
                             if status == 200 else {"error": {"code": result, "message": "no"}}).encode()
        response = requests.Response()
        response.status_code, response._content = status, payload
        response.headers = CaseInsensitiveDict()
        if signed:
            stamp = str(int(time.time()) if timestamp is None else timestamp)
            response.headers.update({REGISTRY_KEY_ID: key_id, REGISTRY_TIMESTAMP: stamp, REGISTRY_SIGNATURE: sign(
                key or self.registry_key, response_message(status, nonce or headers[HEADER_NONCE], stamp, payload))})
        return response


def counted() -> dict[str, float]:
    return {outcome: REGISTRY.get_sample_value("credence_degree_registry_lookups_total", {"outcome": outcome}) or 0.0
            for outcome in degree_registry.OUTCOMES}


def adapter(secrets_dir, fake, **options) -> HttpDegreeRegistry:
    return HttpDegreeRegistry("https://registry.test", KeyStore(secrets_dir, "c1", 0), http=fake,
                              retry_backoff_seconds=0, **options)


def look_up(registry):
    return registry.look_up(NAME, RESIDENT_ID, NUMBER)


def test_a_signed_answer_is_believed_and_the_request_carries_personal_data_in_its_signed_body_only(
        secrets_dir, registry_key, credence_key):
    fake = FakeRegistry(registry_key, ["found", "not_found"])
    registry = adapter(secrets_dir, fake)
    before = counted()
    assert look_up(registry).found is True
    assert look_up(registry).found is False
    after = counted()
    assert (after["found"] - before["found"], after["not_found"] - before["not_found"]) == (1, 1)
    call = fake.calls[0]
    assert call["url"] == "https://registry.test/v1/degree-lookups"
    assert NAME.encode() in call["body"] and RESIDENT_ID.encode() in call["body"] and NUMBER.encode() in call["body"]
    assert not any(secret in str(call["headers"]) for secret in (NAME, RESIDENT_ID, NUMBER))
    headers = call["headers"]
    assert headers[HEADER_KEY_ID] == "c1" and re.fullmatch(r"[0-9a-f]{32}", headers[HEADER_NONCE])
    assert verify(credence_key.public_key(), request_message("POST", "/v1/degree-lookups",
                                                             headers["Credence-Timestamp"], headers[HEADER_NONCE],
                                                             call["body"]), headers["Credence-Signature"])
    assert fake.calls[0]["headers"][HEADER_NONCE] != fake.calls[1]["headers"][HEADER_NONCE]


def unanswered(registry, outcome: str, caplog) -> None:
    before = counted()
    with caplog.at_level(logging.WARNING, logger="services.identity.adapters.degree_registry"):
        with pytest.raises(ServiceUnavailable) as refused:
            look_up(registry)
    assert refused.value.code == "degree_registry_unavailable" and "try again" in refused.value.message
    after = counted()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {outcome: 1}
    assert f"({outcome})" in caplog.text
    assert not any(secret in caplog.text for secret in (NAME, RESIDENT_ID, NUMBER))
    caplog.clear()


def test_what_cannot_be_believed_is_a_503_counted_by_outcome_and_logged_without_personal_data(
        secrets_dir, registry_key, caplog):
    impostor = ed25519.Ed25519PrivateKey.generate()
    cases = [
        ("bad_signature", lambda f, b, h: f.answer(b, h, "found", key=impostor)),  # forged
        ("bad_signature", lambda f, b, h: f.answer(b, h, "found", signed=False)),
        ("bad_signature", lambda f, b, h: f.answer(b, h, "found", key_id="r9")),  # a key we were never given
        ("bad_signature", lambda f, b, h: f.answer(b, h, "found", nonce="f" * 32)),  # an answer to another request
        ("bad_signature", lambda f, b, h: f.answer(b, h, "found", timestamp=int(time.time()) - 3600)),  # replayed
        ("invalid_response", lambda f, b, h: f.answer(b, h, "found", request_id="someone-else")),
        ("refused", lambda f, b, h: f.answer(b, h, "unknown_key", status=401)),  # our key: not retried
        ("bad_signature", lambda f, b, h: f.answer(b, h, "unknown_key", status=401, signed=False)),
    ]
    for outcome, step in cases:
        fake = FakeRegistry(registry_key, [step, "found"])
        unanswered(adapter(secrets_dir, fake), outcome, caplog)
        assert len(fake.calls) == 1  # none of these is asked again at once


def test_transport_errors_and_5xx_are_retried_with_a_fresh_signature_and_the_same_body(
        secrets_dir, registry_key, caplog):
    fake = FakeRegistry(registry_key, [requests.ConnectTimeout("slow"),
                                       lambda f, b, h: f.answer(b, h, "unavailable", status=503, signed=False),
                                       "found"])
    registry = adapter(secrets_dir, fake, attempts=3)
    assert look_up(registry).found is True
    assert len({call["body"] for call in fake.calls}) == 1  # the same request_id: one look-up
    assert len({call["headers"][HEADER_NONCE] for call in fake.calls}) == 3  # each attempt signed afresh
    for outcome, failure in (("timeout", requests.ReadTimeout("slow")),
                             ("unreachable", requests.ConnectionError("refused")),
                             ("server_error", lambda f, b, h: f.answer(b, h, "rate_limited", status=429))):
        fake = FakeRegistry(registry_key, [failure, failure, "found"])
        unanswered(adapter(secrets_dir, fake, attempts=2), outcome, caplog)
        assert len(fake.calls) == 2


def test_the_breaker_opens_after_failures_in_a_row_and_a_trial_closes_it(secrets_dir, registry_key, caplog):
    fake = FakeRegistry(registry_key, [requests.ConnectionError("down")] * 3)
    registry = adapter(secrets_dir, fake, attempts=1, breaker_failures=3, breaker_reset_seconds=3600)
    for _ in range(3):
        unanswered(registry, "unreachable", caplog)  # the third opens it, and is counted as what it was
    assert registry.breaker.current_state == "open"
    unanswered(registry, "circuit_open", caplog)
    assert len(fake.calls) == 3  # not asked while open
    registry.breaker.reset_timeout = 0  # the wait is over: one trial, which succeeds and closes it
    assert look_up(registry).found is True and registry.breaker.current_state == "closed"


def test_the_request_signature_is_base64_of_64_bytes(secrets_dir, registry_key):
    fake = FakeRegistry(registry_key)
    look_up(adapter(secrets_dir, fake))
    assert len(base64.b64decode(fake.calls[0]["headers"]["Credence-Signature"], validate=True)) == 64
