"""Signed actors (credence_common/security/actor_tokens.py) and the one check every service makes (actors.as_actor)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from credence_common.config import ConfigurationRefused, assert_safe_for_environment
from credence_common.contracts.errors import Forbidden, Unauthorized
from credence_common.security import actors
from credence_common.security.actor_tokens import (
    DEVELOPMENT_SIGNING_KEY,
    DEVELOPMENT_VERIFY_KEYS,
    LEEWAY_SECONDS,
    ActorSigner,
    ActorVerifier,
    KeySpecError,
    new_key_pair,
    parse_key_spec,
)

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def old_pair():
    return new_key_pair("k1")


@pytest.fixture(scope="module")
def new_pair():
    return new_key_pair("k2")


def refused(verifier: ActorVerifier, token, now=NOW) -> str:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(token, now=now)
    return info.value.code


def test_a_signed_actor_verifies_as_who_the_gateway_authenticated(old_pair):
    signing, verifying = old_pair
    token = ActorSigner.from_spec(signing, 90).sign("cand-1", "candidate", now=NOW)
    assert ActorVerifier.from_spec(verifying).verify(token, now=NOW + 60) == {"subject": "cand-1",
                                                                              "role": "candidate"}
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == "k1"


def test_an_expired_actor_is_refused_after_its_lifetime_and_the_leeway(old_pair):
    signing, verifying = old_pair
    token = ActorSigner.from_spec(signing, 90).sign("staff:a", "staff", now=NOW)
    verifier = ActorVerifier.from_spec(verifying)
    assert verifier.verify(token, now=NOW + 90 + LEEWAY_SECONDS)["role"] == "staff"
    assert refused(verifier, token, now=NOW + 91 + LEEWAY_SECONDS) == "actor_not_signed"


def test_an_expired_actor_is_refused_on_the_real_clock(old_pair):
    signing, verifying = old_pair
    token = ActorSigner.from_spec(signing, 60).sign("staff:a", "staff", now=NOW)  # NOW is in 2027
    stale = ActorSigner.from_spec(signing, 60).sign("staff:a", "staff", now=1_600_000_000)
    verifier = ActorVerifier.from_spec(verifying)
    assert verifier.verify(ActorSigner.from_spec(signing, 60).sign("staff:a", "staff"))["role"] == "staff"
    with pytest.raises(Unauthorized):
        verifier.verify(stale)
    assert token  # signed for a moment still to come: only the clock decides


def test_a_key_the_services_do_not_know_is_refused(old_pair, new_pair):
    forged = ActorSigner.from_spec(new_pair[0]).sign("staff:mallory", "staff", now=NOW)
    assert refused(ActorVerifier.from_spec(old_pair[1]), forged) == "actor_not_signed"


def test_a_forger_reusing_a_known_key_id_with_another_key_is_refused(old_pair):
    other_signing, _ = new_key_pair("k1")  # same id "k1", different key
    forged = ActorSigner.from_spec(other_signing).sign("staff:mallory", "staff", now=NOW)
    assert refused(ActorVerifier.from_spec(old_pair[1]), forged) == "actor_not_signed"


def test_a_tampered_role_breaks_the_signature(old_pair):
    signing, verifying = old_pair
    header, payload, signature = ActorSigner.from_spec(signing).sign("cand-1", "candidate", now=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "staff"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refused(ActorVerifier.from_spec(verifying), f"{header}.{tampered}.{signature}") == "actor_not_signed"


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
def test_another_algorithm_is_refused_even_with_a_known_key_id(old_pair, algorithm):
    _, verifying = old_pair
    claims = {"sub": "staff:m", "role": "staff", "aud": "credence-services", "iat": NOW, "exp": NOW + 60}
    # HS256 keyed with the public key's text: the classic confusion attack on verifiers that trust "alg"
    key = verifying.split("=", 1)[1] if algorithm == "HS256" else None
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})
    assert refused(ActorVerifier.from_spec(verifying), token) == "actor_not_signed"


def test_a_token_for_another_audience_is_refused(old_pair):
    signing, verifying = old_pair
    signer = ActorSigner.from_spec(signing)
    claims = {"sub": "staff:m", "role": "staff", "aud": "someone-else", "iat": NOW, "exp": NOW + 60}
    token = jwt.encode(claims, signer.key, algorithm="EdDSA", headers={"kid": "k1"})
    assert refused(ActorVerifier.from_spec(verifying), token) == "actor_not_signed"


def test_rotation_old_and_new_keys_both_verify_while_both_are_listed(old_pair, new_pair):
    both = ActorVerifier.from_spec(f"{new_pair[1]},{old_pair[1]}")
    before = ActorSigner.from_spec(old_pair[0]).sign("staff:a", "staff", now=NOW)
    after = ActorSigner.from_spec(new_pair[0]).sign("staff:a", "staff", now=NOW)
    assert both.verify(before, now=NOW) == both.verify(after, now=NOW)
    assert both.key_ids == ["k1", "k2"]
    # once the old key is dropped, what it signed is refused and what the new one signs still passes
    only_new = ActorVerifier.from_spec(new_pair[1])
    assert refused(only_new, before) == "actor_not_signed"
    assert only_new.verify(after, now=NOW)["subject"] == "staff:a"


@pytest.mark.parametrize("spec", ["", "k1", "=abc", "k1=", "bad id=abc", "k1=abc,k1=abc", "k1=not+base64url",
                                  "k1=" + "A" * 10])
def test_unreadable_key_settings_are_refused_without_echoing_the_material(spec):
    with pytest.raises(KeySpecError) as info:
        ActorVerifier.from_spec(spec)
    assert "not+base64url" not in str(info.value)


def test_the_signing_key_is_exactly_one_key():
    with pytest.raises(KeySpecError):
        ActorSigner.from_spec(f"{new_key_pair('a')[0]},{new_key_pair('b')[0]}")
    assert parse_key_spec(" a=x , b=y ") == [("a", "x"), ("b", "y")]


def test_a_service_holding_only_public_keys_cannot_sign(old_pair):
    # the public half read as if it were a private seed is just another key: what it signs does not verify
    forged = ActorSigner.from_spec(old_pair[1]).sign("staff:m", "staff", now=NOW)
    assert refused(ActorVerifier.from_spec(old_pair[1]), forged) == "actor_not_signed"


def test_the_development_key_is_refused_outside_development():
    for setting, value in (("ACTOR_SIGNING_KEY", DEVELOPMENT_SIGNING_KEY),
                           ("ACTOR_VERIFY_KEYS", DEVELOPMENT_VERIFY_KEYS)):
        with pytest.raises(ConfigurationRefused, match=setting):
            assert_safe_for_environment("gateway", {setting: value}, environ={"CREDENCE_ENV": "staging"})
    signing, verifying = new_key_pair("k1")
    assert assert_safe_for_environment("gateway", {"ACTOR_SIGNING_KEY": signing, "ACTOR_VERIFY_KEYS": verifying},
                                       environ={"CREDENCE_ENV": "production"}) is None


# --- as_actor: the one check in every service ----------------------------------------------------------------

@pytest.fixture
def verifying_process(old_pair):
    actors.configure_verifier(ActorVerifier.from_spec(old_pair[1]))
    yield ActorSigner.from_spec(old_pair[0])
    actors.configure_verifier(None)


def test_as_actor_accepts_a_signed_actor_and_role_checks_follow(verifying_process):
    token = verifying_process.sign("cand-1", "candidate")
    assert actors.require_self(token, "cand-1").subject == "cand-1"
    with pytest.raises(Forbidden):
        actors.require_role(token, "staff")


@pytest.mark.parametrize("actor", [{"subject": "staff:m", "role": "staff"}, "not-a-token", ["staff"], 42])
def test_as_actor_refuses_an_unsigned_actor(verifying_process, actor):
    with pytest.raises(Unauthorized) as info:
        actors.require_role(actor, "staff")
    assert info.value.code == "actor_not_signed"


def test_as_actor_refuses_a_missing_actor_as_not_signed_in(verifying_process):
    with pytest.raises(Unauthorized) as info:
        actors.as_actor(None)
    assert info.value.code == "authentication_required"


def test_a_process_without_keys_refuses_every_actor(old_pair):
    actors.configure_verifier(None)
    token = ActorSigner.from_spec(old_pair[0]).sign("staff:a", "staff")
    with pytest.raises(Unauthorized):
        actors.as_actor(token)


def test_a_signed_actor_with_an_unknown_role_is_refused(verifying_process):
    with pytest.raises(Unauthorized):
        actors.as_actor(verifying_process.sign("x", "root"))


# --- batch tokens: one signature for the actors of a batched call -------------------------------------------

def test_a_batch_token_vouches_for_its_actors_in_order(old_pair):
    signer, verifier = ActorSigner.from_spec(old_pair[0]), ActorVerifier.from_spec(old_pair[1])
    token = signer.sign_batch([("cand-1", "candidate"), ("staff:a", "staff")], now=NOW)
    assert verifier.verify_batch(token, now=NOW) == [{"subject": "cand-1", "role": "candidate"},
                                                      {"subject": "staff:a", "role": "staff"}]
    with pytest.raises(Unauthorized):
        verifier.verify_batch(token, now=NOW + signer.lifetime_seconds + LEEWAY_SECONDS + 1)


def test_neither_kind_of_token_is_taken_for_the_other(old_pair):
    signer, verifier = ActorSigner.from_spec(old_pair[0]), ActorVerifier.from_spec(old_pair[1])
    assert refused(verifier, signer.sign_batch([("staff:a", "staff")], now=NOW)) == "actor_not_signed"
    with pytest.raises(Unauthorized):
        verifier.verify_batch(signer.sign("staff:a", "staff", now=NOW), now=NOW)


def test_a_batch_token_from_an_unknown_key_or_tampered_is_refused(old_pair, new_pair):
    verifier = ActorVerifier.from_spec(old_pair[1])
    with pytest.raises(Unauthorized):
        verifier.verify_batch(ActorSigner.from_spec(new_pair[0]).sign_batch([("staff:a", "staff")], now=NOW), now=NOW)
    header, payload, signature = ActorSigner.from_spec(old_pair[0]).sign_batch(
        [("cand-1", "candidate")], now=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["actors"] = [["staff:a", "staff"]]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        verifier.verify_batch(f"{header}.{forged}.{signature}", now=NOW)


def test_as_actors_checks_the_batch_once_and_its_length(verifying_process):
    token = verifying_process.sign_batch([("cand-1", "candidate"), ("cand-2", "candidate")])
    first, second = actors.as_actors(token, 2)
    assert actors.require_self(first, "cand-1") is first and second.subject == "cand-2"
    with pytest.raises(Unauthorized):
        actors.as_actors(token, 3)  # a batch of reads its token was not signed for
    with pytest.raises(Unauthorized) as info:
        actors.as_actors(None, 1)
    assert info.value.code == "authentication_required"


# --- the operator's CLI ----------------------------------------------------------------------------------------

def test_the_cli_prints_a_key_pair_that_signs_and_verifies():
    from typer.testing import CliRunner

    from credence_cli.main import app

    result = CliRunner().invoke(app, ["actor-keys", "a2"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) if ": " in line else line.split("=", 1) for line in result.output.splitlines())
    signing, verifying = lines["ACTOR_SIGNING_KEY"], lines["ACTOR_VERIFY_KEYS entry"]
    token = ActorSigner.from_spec(signing).sign("staff:a", "staff", now=NOW)
    assert ActorVerifier.from_spec(verifying).verify(token, now=NOW)["subject"] == "staff:a"
    assert signing.startswith("a2=") and verifying.startswith("a2=") and signing != verifying


def test_the_cli_acts_as_staff_signed_with_its_configured_key(monkeypatch, old_pair):
    from credence_cli import main

    monkeypatch.setenv("ACTOR_SIGNING_KEY", old_pair[0])
    monkeypatch.setenv("CREDENCE_OPERATOR", "wang")
    assert ActorVerifier.from_spec(old_pair[1]).verify(main.staff_actor("admin")) == {
        "subject": "cli:wang", "role": "staff", "staff_roles": ["admin"]}  # only the role its command needs


def test_an_institution_actor_carries_its_institution_signed_and_no_other_role_may(old_pair, monkeypatch):
    signing, verifying = old_pair
    signer, verifier = ActorSigner.from_spec(signing, 90), ActorVerifier.from_spec(verifying)
    token = signer.sign("institution:sunrise", "institution", now=NOW, institution_id="inst-7")
    assert verifier.verify(token, now=NOW) == {"subject": "institution:sunrise", "role": "institution",
                                               "institution_id": "inst-7"}
    assert "institution_id" not in verifier.verify(signer.sign("cand-1", "candidate", now=NOW), now=NOW)
    monkeypatch.setattr(actors, "_verifier", verifier)
    assert actors.as_actor(signer.sign("institution:sunrise", "institution", institution_id="inst-7")) \
        .institution_id == "inst-7"
    for role, institution_id in (("candidate", "inst-7"), ("staff", "inst-7"), ("institution", "")):
        with pytest.raises(Unauthorized):
            actors.as_actor(signer.sign("someone", role, institution_id=institution_id))
    # a token whose institution is not a string is refused like any other forgery
    key = ActorSigner.from_spec(signing, 90).key
    odd = jwt.encode({"sub": "institution:sunrise", "role": "institution", "institution_id": ["inst-7"],
                      "aud": "credence-services", "iss": "gateway", "iat": NOW, "exp": NOW + 90}, key,
                     algorithm="EdDSA", headers={"kid": "k1"})
    assert refused(verifier, odd) == "actor_not_signed"


def test_a_staff_actor_carries_its_staff_roles_signed_and_no_other_role_may(old_pair, monkeypatch):
    signing, verifying = old_pair
    signer, verifier = ActorSigner.from_spec(signing, 90), ActorVerifier.from_spec(verifying)
    token = signer.sign("staff:li", "staff", now=NOW, staff_roles=["recorder", "expert"])
    assert verifier.verify(token, now=NOW) == {"subject": "staff:li", "role": "staff",
                                               "staff_roles": ["expert", "recorder"]}
    monkeypatch.setattr(actors, "_verifier", verifier)
    li = actors.as_actor(signer.sign("staff:li", "staff", staff_roles=["recorder", "expert"]))
    assert li.staff_roles == {"recorder", "expert"}
    assert actors.require_staff(li, "expert") is li and actors.require_staff(li, "publisher", "recorder") is li
    with pytest.raises(Forbidden) as no_role:
        actors.require_staff(li, "publisher")
    assert no_role.value.code == "role_required" and "publisher" in no_role.value.message
    assert no_role.value.details == [{"field": "staff_role", "message": "publisher"}]
    # a staff token from before tokens named roles holds none
    assert actors.as_actor(signer.sign("staff:old", "staff")).staff_roles == frozenset()
    with pytest.raises(Forbidden):
        actors.require_staff(signer.sign("staff:old", "staff"), "recorder")
    # any staff still passes a check that names no staff role; a candidate never passes a staff one
    assert actors.require_role(signer.sign("staff:old", "staff"), "candidate", "staff").role == "staff"
    with pytest.raises(Forbidden) as candidate:
        actors.require_staff(signer.sign("cand-1", "candidate"), "recorder")
    assert candidate.value.code == "forbidden"
    # only staff hold staff roles, and only known ones
    for role, roles in (("candidate", ["expert"]), ("institution", ["admin"]), ("staff", ["boss"])):
        with pytest.raises(Unauthorized):
            actors.as_actor(signer.sign("someone", role, staff_roles=roles))
    key = ActorSigner.from_spec(signing, 90).key
    odd = jwt.encode({"sub": "staff:m", "role": "staff", "staff_roles": "admin", "aud": "credence-services",
                      "iss": "gateway", "iat": NOW, "exp": NOW + 90}, key, algorithm="EdDSA", headers={"kid": "k1"})
    assert refused(verifier, odd) == "actor_not_signed"
