"""#17 item 2: the sandboxes stay in development, and a process that is not told where it runs does not start.

The attacker is a signed-in caller on a staging (or production) platform who tries the development routes: the
sandbox payer, which marks an order paid without money, and the dev SMS inbox, which shows texted codes. And a
careless operator, or a manifest that lost a line, starting a process with no ``CREDENCE_ENV``: it used to mean
development (dev secrets, sandboxes); now the process refuses to start. Both backends, real processes."""

from __future__ import annotations

import subprocess

import pytest

from deploy.platform import REPO_ROOT
from deploy.processes import BY_NAME, PROCESSES
from tests.e2e.conftest import SECRETS, running_platform
from tests.security.conftest import PRODUCTION_LIMITS, client_from, error_code

# Staging as deploy/k8s and docker-compose.yml configure it: real secrets, the SMS webhook, no online identity
# confirmation (the sandbox verifier is refused outside development).
STAGING = {
    "CREDENCE_ENV": "staging",
    "SMS_ADAPTER": "webhook",
    "SMS_WEBHOOK_URL": "http://127.0.0.1:9/sms",
    "SMS_WEBHOOK_SECRET": "staging-sms-webhook-secret",
    "IDENTITY_VERIFIER": "reject",
    "IDENTITY_DATA_KEYS": "k1=staging-identity-data-key",
    "IDENTITY_INDEX_KEY": "staging-identity-index-key",
    "CERTIFICATES_DATA_KEYS": "k1=staging-certificates-data-key",
    "SCORING_DATA_KEYS": "k1=staging-scoring-data-key",
    "PAYMENTS_DATA_KEYS": "k1=staging-payments-data-key",
    **PRODUCTION_LIMITS,
}
SANDBOX_PAYMENT = "/api/v1/sandbox-provider/orders/{order}/payment"
DEV_SMS = "/api/v1/dev/sms-messages"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def staging_platform(request, tmp_path_factory):
    with running_platform(request.param, tmp_path_factory.mktemp(f"staging-{request.param}"), **STAGING) as instance:
        yield instance


def staff_session(platform, address: str):
    caller = client_from(address)
    signed_in = caller.post(platform.gateway_url + "/api/v1/auth/staff-token", timeout=15,
                            json={"username": "admin", "password": SECRETS["BOOTSTRAP_STAFF_PASSWORD"]})
    assert signed_in.status_code == 200, signed_in.text
    caller.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
    return caller


def assert_no_such_route(caller, platform, method: str, path: str) -> None:
    """The same answer as a path that never existed: the route is not there, not merely refused."""
    unknown = caller.request(method, platform.gateway_url + "/api/v1/no-such-endpoint/at-all", json={}, timeout=15)
    answer = caller.request(method, platform.gateway_url + path, json={}, timeout=15)
    assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    assert error_code(answer) == "route_not_found"
    assert answer.json() == unknown.json()


def test_paying_an_order_at_the_sandbox_on_staging_finds_no_such_route(staging_platform):
    # staff may do everything the sandbox payer allows; a signed-in caller gets no further than an unknown path
    caller = staff_session(staging_platform, "127.0.0.41")
    for method in ("POST", "GET"):  # a GET must not answer 405 either, which would show the route exists
        assert_no_such_route(caller, staging_platform, method, SANDBOX_PAYMENT.format(order="P20260101000000001"))
    paths = caller.get(staging_platform.gateway_url + "/openapi.json", timeout=15).json()["paths"]
    assert "/api/v1/payment-orders" in paths  # the document is there, only the sandbox is not
    assert not [path for path in paths if path.startswith("/api/v1/sandbox-provider/")]
    assert not [operation for operations in paths.values() for operation in operations.values()
                if "development" in operation.get("tags", [])]


def test_reading_texted_codes_from_the_dev_inbox_on_staging_finds_no_such_route(staging_platform):
    caller = client_from("127.0.0.42")
    for method in ("POST", "GET"):  # a GET must not answer 405 either, which would show the route exists
        assert_no_such_route(caller, staging_platform, method, DEV_SMS)
    paths = caller.get(staging_platform.gateway_url + "/openapi.json", timeout=15).json()["paths"]
    assert DEV_SMS not in paths


def test_starting_identity_on_staging_with_the_sandbox_verifier_is_refused(staging_platform):
    """The sandbox verifier would confirm any identity for free: staging refuses it at start-up, so no route of a
    staging platform can confirm an identity without evidence."""
    env = dict(staging_platform.env, IDENTITY_VERIFIER="sandbox", IDENTITY_METRICS_PORT="0")
    result = subprocess.run(BY_NAME["identity"].command(), cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=90)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "identity: refusing to start with CREDENCE_ENV=staging" in result.stderr
    assert "IDENTITY_VERIFIER=sandbox" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("spec", PROCESSES, ids=lambda spec: spec.name)
def test_starting_a_process_without_credence_env_beside_the_platform_is_refused(secure_platform, spec):
    """Given everything else the running platform's processes have (its broker, its databases), a process with no
    CREDENCE_ENV does not join it as development: it exits at once and says why."""
    env = {key: value for key, value in secure_platform.env.items() if key != "CREDENCE_ENV"}
    if spec.metrics_port_env:
        env[spec.metrics_port_env] = "0"
    result = subprocess.run(spec.command(), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"{spec.name}: refusing to start: CREDENCE_ENV is not set" in result.stderr
    assert "development, staging or production" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["", "prod"])
def test_starting_a_process_with_an_empty_or_unknown_credence_env_is_refused(secure_platform, value):
    env = dict(secure_platform.env, CREDENCE_ENV=value, PAYMENTS_METRICS_PORT="0")
    result = subprocess.run(BY_NAME["payments"].command(), cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=90)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"payments: refusing to start: CREDENCE_ENV is {value!r}" in result.stderr
