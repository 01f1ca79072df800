"""Issue #17, item 1: an attacker who captured a sign-in request with its Idempotency-Key (a proxy log, a shared
machine, a browser's retry queue) sends it again, from another address, after the credential it used has gone.
The gateway used to answer from the stored first answer with a fresh access token. Now a sign-in is never
replayed: the resent request is a fresh attempt, and fails because the credential is gone."""

from __future__ import annotations

import random
import uuid

import pytest
import requests

from deploy.journey import random_mobile, random_resident_id, read_dev_code
from tests.security.conftest import client_from, error_code


class _DevCodes:
    """Reads the development SMS adapter through the gateway (deploy/journey.read_dev_code's client)."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def request(self, method: str, path: str, **kwargs):
        response = requests.request(method, self.base_url + path, timeout=15, **kwargs)
        response.raise_for_status()
        return response.json()


def _texted_code(base: str, client: requests.Session, mobile: str, purpose: str) -> str:
    sent = client.post(f"{base}/api/v1/mobile-codes", json={"mobile": mobile, "purpose": purpose}, timeout=15)
    assert sent.status_code == 202, sent.text
    return read_dev_code(_DevCodes(base), mobile)


@pytest.fixture
def candidate(secure_platform, request):
    """A candidate of the test's own (the package's journey candidate stays signed in for other tests)."""
    base = secure_platform.gateway_url
    client = client_from(f"127.0.0.{40 + len(request.node.name) % 50}")
    mobile, password = random_mobile(random.Random()), f"Replay-{uuid.uuid4().hex[:12]}"
    registered = client.post(f"{base}/api/v1/candidates", timeout=15, json={
        "full_name": "王小明", "resident_id_number": random_resident_id(random.Random()), "mobile": mobile,
        "mobile_code": _texted_code(base, client, mobile, "registration"),
        "email": f"replay.{uuid.uuid4().hex[:10]}@example.com", "password": password, "exam_region": "11"})
    assert registered.status_code == 201, registered.text
    return {"mobile": mobile, "password": password, "login": {"login": mobile, "password": password}}


def _works(base: str, answer: requests.Response) -> bool:
    """Whether the response carries an access token the gateway accepts."""
    token = answer.json().get("access_token") if answer.headers.get("Content-Type", "").startswith(
        "application/json") else None
    if not token:
        return False
    return requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=15).ok


def test_replaying_a_refresh_after_logout_from_another_address_gets_no_working_token(secure_platform, candidate):
    base, victim, attacker = secure_platform.gateway_url, client_from("127.0.0.21"), client_from("127.0.0.22")
    signed_in = victim.post(f"{base}/api/v1/auth/login", json=candidate["login"], timeout=15).json()
    key = {"Idempotency-Key": f"refresh-{uuid.uuid4()}"}
    captured = {"refresh_token": signed_in["refresh_token"]}
    refreshed = victim.post(f"{base}/api/v1/auth/refresh", json=captured, headers=key, timeout=15)
    assert refreshed.status_code == 200 and _works(base, refreshed)
    logged_out = victim.post(f"{base}/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]},
                             timeout=15)
    assert logged_out.status_code == 200

    replayed = attacker.post(f"{base}/api/v1/auth/refresh", json=captured, headers=key, timeout=15)
    assert replayed.status_code == 401 and error_code(replayed) == "invalid_refresh_token"
    assert not _works(base, replayed)


def test_replaying_a_login_captured_before_a_password_change_is_refused(secure_platform, candidate):
    base, victim, attacker = secure_platform.gateway_url, client_from("127.0.0.23"), client_from("127.0.0.24")
    key = {"Idempotency-Key": f"login-{uuid.uuid4()}"}
    signed_in = victim.post(f"{base}/api/v1/auth/login", json=candidate["login"], headers=key, timeout=15)
    assert signed_in.status_code == 200 and _works(base, signed_in)
    changed = victim.post(f"{base}/api/v1/me/password", timeout=15,
                          headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"},
                          json={"current_password": candidate["password"],
                                "new_password": f"Changed-{uuid.uuid4().hex[:12]}"})
    assert changed.status_code == 200, changed.text

    replayed = attacker.post(f"{base}/api/v1/auth/login", json=candidate["login"], headers=key, timeout=15)
    assert replayed.status_code == 401 and error_code(replayed) == "invalid_credentials"
    assert not _works(base, replayed)


def test_replaying_a_used_sign_in_code_with_its_key_is_refused(secure_platform, candidate):
    base, victim, attacker = secure_platform.gateway_url, client_from("127.0.0.25"), client_from("127.0.0.26")
    code = _texted_code(base, victim, candidate["mobile"], "sign_in")
    key = {"Idempotency-Key": f"code-login-{uuid.uuid4()}"}
    request = {"mobile": candidate["mobile"], "code": code}
    signed_in = victim.post(f"{base}/api/v1/auth/code-login", json=request, headers=key, timeout=15)
    assert signed_in.status_code == 200 and _works(base, signed_in)

    replayed = attacker.post(f"{base}/api/v1/auth/code-login", json=request, headers=key, timeout=15)
    assert 400 <= replayed.status_code < 500 and error_code(replayed) == "invalid_code"
    assert not _works(base, replayed)
