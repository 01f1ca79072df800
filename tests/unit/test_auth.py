from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from credence_common.contracts.errors import Unauthorized
from gateway.auth import ALGORITHM, ISSUER, PUBLIC, Principal, TokenService
from gateway.statuses import http_status

SECRET = "unit-test-jwt-secret-of-enough-length-0123456789"
OTHER_SECRET = "another-jwt-secret-of-enough-length-9876543210"
NOW = 1_700_000_000


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(SECRET, lifetime_seconds=3600)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def unauthorized(tokens: TokenService, header: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        tokens.principal_from_header(header)
    assert http_status(info.value) == 401
    return info.value


@pytest.mark.parametrize("role", ["candidate", "institution", "staff"])
def test_issue_and_decode_round_trip(tokens, role):
    issued = tokens.issue("subject-1", role)
    assert issued["token_type"] == "bearer"
    assert issued["expires_in"] == 3600
    principal = tokens.principal_from_header(bearer(issued["access_token"]))
    assert principal == Principal(subject="subject-1", role=role)
    assert principal.is_public is False


def test_issued_claims(tokens):
    issued = tokens.issue("subject-1", "staff", now=NOW)
    claims = jwt.decode(issued["access_token"], SECRET, algorithms=[ALGORITHM], issuer=ISSUER,
                        options={"verify_exp": False})
    assert claims == {"sub": "subject-1", "role": "staff", "iss": ISSUER, "iat": NOW, "exp": NOW + 3600}
    assert jwt.get_unverified_header(issued["access_token"])["alg"] == "HS256"


def test_lower_case_bearer_scheme_and_extra_spaces_are_accepted(tokens):
    token = tokens.issue("s", "candidate")["access_token"]
    assert tokens.principal_from_header("bearer " + token).subject == "s"
    assert tokens.principal_from_header("Bearer   " + token + "  ").subject == "s"


def test_expired_token_is_refused_as_expired(tokens):
    token = tokens.issue("s", "candidate", now=time.time() - 3600 - 60)["access_token"]
    err = unauthorized(tokens, bearer(token))
    assert err.code == "token_expired"


def test_token_is_valid_just_before_expiry(tokens):
    token = tokens.issue("s", "candidate", now=time.time() - 3600 + 60)["access_token"]
    assert tokens.principal_from_header(bearer(token)).role == "candidate"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_payload_tampering_is_refused(tokens):
    header, _payload, signature = tokens.issue("s", "candidate")["access_token"].split(".")
    claims = {"sub": "s", "role": "staff", "iss": ISSUER, "iat": int(time.time()), "exp": int(time.time()) + 3600}
    err = unauthorized(tokens, bearer(f"{header}.{b64(claims)}.{signature}"))
    assert err.code == "invalid_token"


def test_signature_tampering_is_refused(tokens):
    header, payload, signature = tokens.issue("s", "candidate")["access_token"].split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    err = unauthorized(tokens, bearer(f"{header}.{payload}.{flipped}"))
    assert err.code == "invalid_token"


def test_token_signed_with_another_secret_is_refused(tokens):
    foreign = TokenService(OTHER_SECRET).issue("s", "staff")["access_token"]
    assert unauthorized(tokens, bearer(foreign)).code == "invalid_token"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "s", "role": "public", "iss": ISSUER},  # public is never carried by a token
        {"sub": "s", "role": "root", "iss": ISSUER},
        {"sub": "s", "iss": ISSUER},  # no role
        {"role": "staff", "iss": ISSUER},  # no subject
        {"sub": "s", "role": "staff", "iss": "someone-else"},
        {"sub": "s", "role": "staff"},  # no issuer
    ],
)
def test_well_signed_tokens_with_bad_claims_are_refused(tokens, claims):
    token = jwt.encode({**claims, "exp": int(time.time()) + 600}, SECRET, algorithm=ALGORITHM)
    assert unauthorized(tokens, bearer(token)).code == "invalid_token"


def test_token_without_expiry_is_refused(tokens):
    token = jwt.encode({"sub": "s", "role": "staff", "iss": ISSUER}, SECRET, algorithm=ALGORITHM)
    assert unauthorized(tokens, bearer(token)).code == "invalid_token"


def test_unsigned_token_is_refused(tokens):
    token = jwt.encode({"sub": "s", "role": "staff", "iss": ISSUER, "exp": int(time.time()) + 600}, None,
                       algorithm="none")
    assert unauthorized(tokens, bearer(token)).code == "invalid_token"


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_acts_as_public(tokens, header):
    principal = tokens.principal_from_header(header)
    assert principal is PUBLIC
    assert principal.role == "public" and principal.is_public is True


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer ", "Bearer    ", "abc"])
def test_other_schemes_and_empty_tokens_are_invalid(tokens, header):
    assert unauthorized(tokens, header).code == "invalid_token"


def test_garbage_token_is_invalid(tokens):
    assert unauthorized(tokens, "Bearer not.a.jwt").code == "invalid_token"


@pytest.mark.parametrize("role", ["public", "admin", "", "Staff"])
def test_refuses_to_issue_other_roles(tokens, role):
    with pytest.raises(ValueError, match="cannot issue"):
        tokens.issue("s", role)


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="JWT_SECRET"):
        TokenService("")


def test_an_institution_token_names_its_institution_and_no_other_token_may(tokens):
    issued = tokens.issue("institution:sunrise", "institution", now=time.time(), institution_id="inst-7")
    assert tokens.principal_from_header(bearer(issued["access_token"])) == Principal(
        subject="institution:sunrise", role="institution", institution_id="inst-7")
    for role in ("candidate", "staff"):
        with pytest.raises(ValueError):
            tokens.issue("someone", role, institution_id="inst-7")
    with pytest.raises(ValueError):
        tokens.issue("institution:sunrise", "institution", institution_id="")
    now = int(time.time())
    for claims in ({"role": "candidate", "institution_id": "inst-7"}, {"role": "institution", "institution_id": ""},
                   {"role": "institution", "institution_id": ["inst-7"]}):
        forged = jwt.encode({"sub": "someone", "iss": ISSUER, "iat": now, "exp": now + 60, **claims}, SECRET,
                            algorithm=ALGORITHM)
        assert unauthorized(tokens, bearer(forged)).code == "invalid_token"
    # a token from before tokens named the institution still reads, without one (payments then asks to sign in)
    older = tokens.issue("institution:sunrise", "institution")
    assert tokens.principal_from_header(bearer(older["access_token"])).institution_id is None


def test_a_staff_token_names_its_staff_roles_and_no_other_token_may(tokens):
    issued = tokens.issue("staff:li", "staff", now=time.time(), staff_roles=["expert", "recorder"])
    assert tokens.principal_from_header(bearer(issued["access_token"])) == Principal(
        subject="staff:li", role="staff", staff_roles=frozenset({"recorder", "expert"}))
    claims = jwt.decode(issued["access_token"], SECRET, algorithms=[ALGORITHM], issuer=ISSUER)
    # in the one order of credence_common/contracts/staff_roles.py
    assert claims["staff_roles"] == ["recorder", "expert"]
    none = tokens.issue("staff:new", "staff", staff_roles=[])
    assert tokens.principal_from_header(bearer(none["access_token"])).staff_roles == frozenset()
    for role in ("candidate", "institution"):
        with pytest.raises(ValueError):
            tokens.issue("someone", role, staff_roles=["admin"])
    with pytest.raises(ValueError, match="unknown staff role"):
        tokens.issue("staff:li", "staff", staff_roles=["boss"])
    now = int(time.time())
    for forged_claims in ({"role": "candidate", "staff_roles": ["admin"]}, {"role": "staff", "staff_roles": "admin"},
                          {"role": "staff", "staff_roles": ["boss"]}, {"role": "staff", "staff_roles": [1]}):
        forged = jwt.encode({"sub": "someone", "iss": ISSUER, "iat": now, "exp": now + 60, **forged_claims}, SECRET,
                            algorithm=ALGORITHM)
        assert unauthorized(tokens, bearer(forged)).code == "invalid_token"
    # a staff token from before tokens named roles still reads, holding none (every duty then answers role_required)
    older = tokens.issue("staff:admin", "staff")
    assert tokens.principal_from_header(bearer(older["access_token"])).staff_roles == frozenset()
