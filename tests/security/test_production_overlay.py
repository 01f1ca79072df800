"""#20 item 6: the whole platform configured exactly as deploy/k8s/overlays/production configures it, and no sandbox
route or adapter reachable.

The environment of every process is read from the rendered overlay (``kubectl kustomize``): its ConfigMap settings
and literal values as they are, its Secret keys filled with fresh values shaped like the examples in
deploy/k8s/secrets.example, its Secret volumes (paths under /var/run/secrets/credence) as directories of files the
test writes. Only what cannot exist on a test machine is replaced: the vendors' hosts by their local emulators,
served over HTTPS with a test CA (production refuses a vendor endpoint that is not https://), the broker, the
databases and the ports. Then the attacker's and the operator's questions: does every process start; do the
sandbox payer and the dev SMS inbox exist; does payments talk to WeChat Pay (and nothing else); does identity
text through Tencent Cloud SMS, confirm identities through Tencent Cloud FaceID and check degrees against the
registry's HTTP contract. Both backends, real processes."""

from __future__ import annotations

import random
import re
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519

from credence_common.calendar import business_day
from credence_common.contracts.envelope import utcnow
from deploy.journey import random_mobile, random_resident_id
from deploy.processes import PROCESSES
from services.identity.adapters.degree_registry_emulator import DegreeRegistryEmulator, write_credence_keys
from services.identity.adapters.faceid_emulator import FaceIdEmulator
from services.identity.adapters.sms_emulator import TencentSmsEmulator
from services.identity.adapters.tencent_sms import SECRET_ID_FILE, SECRET_KEY_FILE
from services.payments.adapters.wechatpay_emulator import EmulatorKeys, WeChatPayEmulator
from tests.e2e.conftest import running_platform
from tests.integration.conftest import wait_for
from tests.security.conftest import PRODUCTION_LIMITS, client_from
from tests.security.test_environments import DEV_SMS, SANDBOX_PAYMENT, assert_no_such_route
from tests.tls import issue_test_authority
from tests.unit.test_k8s import K8S_DIR, deployment, env_sources

OVERLAY = "overlays/production"
SECRET_VOLUMES = "/var/run/secrets/credence/"
# set by running_platform for the test's own broker vhost, databases and ports
PROVIDED_BY_THE_TEST = re.compile(r"^(AMQP_URI|ACTOR_VERIFY_KEYS|ACTOR_SIGNING_KEY|GATEWAY_ADDRESS|\w+_DB_URI|"
                                  r"\w+_METRICS_PORT)$")
EXAMPLES = K8S_DIR / "secrets.example"
MERCHANT, APPID = "1900000001", "wxd678efh567hg6787"
SMS_APP_ID, SIGN_NAME = "1400006666", "Credence考试院"
TEMPLATES = {"registration": "1110001", "password_reset": "1110002", "ticket_lookup": "1110003", "sign_in": "1110004"}
FACEID_RULE_ID = "7"


def example_values() -> dict[str, str]:
    values = {}
    for path in sorted(EXAMPLES.glob("*.env")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = value
    return values


def secret_value(key: str, example: str) -> str:
    """A fresh value of the example's shape: each REPLACE_WITH_... placeholder becomes 32 random bytes in hex."""
    if key == "WECHATPAY_MCHID":
        return MERCHANT
    if key == "WECHATPAY_APPID":
        return APPID
    return re.sub(r"REPLACE_WITH_\w+", lambda _: secrets.token_hex(32), example)


def overlay_environment(workdir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """The settings the production overlay gives its processes (one environment for all: no two processes are
    given different values for one name, which the loop checks), and the local directory of each Secret volume."""
    env: dict[str, str] = {}
    volumes: dict[str, Path] = {}
    examples = example_values()
    for spec in PROCESSES:
        for name, source in env_sources(OVERLAY, deployment(OVERLAY, spec)).items():
            if PROVIDED_BY_THE_TEST.match(name):
                continue
            if source[0] == "secret":
                value = env.get(name) or secret_value(source[2], examples[source[2]])
            else:
                value = source[1]
                if value.startswith(SECRET_VOLUMES):
                    local = workdir / value.removeprefix(SECRET_VOLUMES)
                    volumes[value.removeprefix(SECRET_VOLUMES)] = local
                    value = str(local)
                assert env.get(name, value) == value, f"{name} differs between processes"
            env[name] = value
    return env, volumes


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    return issue_test_authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def wechatpay(authority, tmp_path_factory):
    keys = EmulatorKeys()
    with WeChatPayEmulator(keys, MERCHANT).serve_https(authority) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def tencent_sms(authority):
    emulator = TencentSmsEmulator({"AKID" + secrets.token_hex(16): secrets.token_hex(16)}, SMS_APP_ID, (SIGN_NAME,),
                                  {template: 2 for template in TEMPLATES.values()})
    emulator.https_url = authority.serve_https(emulator.server)
    with emulator:
        yield emulator


@pytest.fixture(scope="module")
def faceid(authority):
    with FaceIdEmulator(rule_id=FACEID_RULE_ID).serve_https(authority) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def degree_registry(authority):
    signing_key = ed25519.Ed25519PrivateKey.generate()
    emulator = DegreeRegistryEmulator({"c1": signing_key.public_key()})
    emulator.signing_key = signing_key  # ours, which the test writes into identity's Secret volume
    emulator.https_url = authority.serve_https(emulator.server)
    with emulator:
        yield emulator


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def production_platform(request, tmp_path_factory, authority, wechatpay, tencent_sms, faceid, degree_registry):
    workdir = tmp_path_factory.mktemp(f"production-{request.param}")
    env, volumes = overlay_environment(workdir / "secrets")
    assert env["CREDENCE_ENV"] == "production"
    # the Secret volumes, as the operator creates them (deploy/k8s/README.md, "Secrets")
    wechatpay.keys.write(workdir / "wechatpay-files")
    volumes["wechatpay"].parent.mkdir(parents=True, exist_ok=True)
    (workdir / "wechatpay-files").rename(volumes["wechatpay"])
    (volumes["wechatpay"] / "platform").rename(volumes["wechatpay-platform"])
    faceid.write_secrets(volumes["faceid"])
    volumes["tencent-sms"].mkdir(parents=True)
    ((secret_id, secret_key),) = tencent_sms.secrets.items()
    (volumes["tencent-sms"] / SECRET_ID_FILE).write_text(secret_id)
    (volumes["tencent-sms"] / SECRET_KEY_FILE).write_text(secret_key)
    write_credence_keys(volumes["degree-registry"], {"c1": degree_registry.signing_key},
                        {degree_registry.registry_key_id: degree_registry.registry_key})
    (volumes["degree-registry"] / "signing" / "active_key_id").write_text("c1\n")  # two volumes: it travels inside
    # the operator's own accounts, where the overlay holds placeholders for them
    assert "REPLACE_WITH" in env["SMS_TENCENT_TEMPLATES"] + env["FACEID_RULE_ID"]
    env.update({
        "SMS_TENCENT_SDK_APP_ID": SMS_APP_ID,
        "SMS_TENCENT_SIGN_NAME": SIGN_NAME,
        "SMS_TENCENT_TEMPLATES": ",".join(f"{purpose}={template}" for purpose, template in TEMPLATES.items()),
        "FACEID_RULE_ID": FACEID_RULE_ID,
    })
    env.update({
        "REQUESTS_CA_BUNDLE": str(authority.ca_file),  # the vendors' hosts: their emulators, over HTTPS
        "WECHATPAY_API_BASE": wechatpay.base_url,
        "SMS_TENCENT_ENDPOINT": tencent_sms.https_url,
        "FACEID_ENDPOINT": faceid.base_url,
        "DEGREE_REGISTRY_URL": degree_registry.https_url,
        **PRODUCTION_LIMITS,
    })
    assert not [name for name, value in env.items() if "REPLACE_WITH" in value], "a placeholder left"
    with running_platform(request.param, workdir, **env) as instance:
        instance.overlay_env = env
        yield instance


def staff_session(platform, address: str) -> requests.Session:
    caller = client_from(address)
    signed_in = caller.post(platform.gateway_url + "/api/v1/auth/staff-token", timeout=15, json={
        "username": platform.overlay_env["BOOTSTRAP_STAFF_USERNAME"],
        "password": platform.overlay_env["BOOTSTRAP_STAFF_PASSWORD"]})
    assert signed_in.status_code == 200, signed_in.text
    caller.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
    return caller


def test_every_process_runs_as_production_with_the_real_adapters(production_platform):
    """Each process started (running_platform waits for every one to be ready) with the overlay's settings: no
    sandbox or development adapter among them, and the runner's production check passed for all six."""
    env = production_platform.overlay_env
    assert env["CREDENCE_ENV"] == "production"
    assert env["PAYMENT_PROVIDER"] == "wechatpay"
    assert "PAYMENT_SANDBOX_SIGNING_KEY" not in {name for spec in PROCESSES
                                                 for name in env_sources(OVERLAY, deployment(OVERLAY, spec))}


def test_the_sandbox_payer_and_the_dev_inbox_do_not_exist(production_platform):
    caller = staff_session(production_platform, "127.0.0.61")
    for method in ("POST", "GET"):
        assert_no_such_route(caller, production_platform, method, SANDBOX_PAYMENT.format(order="P20260101000000001"))
        assert_no_such_route(caller, production_platform, method, DEV_SMS)
    paths = caller.get(production_platform.gateway_url + "/openapi.json", timeout=15).json()["paths"]
    assert not [path for path in paths if path.startswith(("/api/v1/sandbox-provider/", "/api/v1/dev/"))]
    assert not [operation for operations in paths.values() for operation in operations.values()
                if "development" in operation.get("tags", [])]


def test_payments_reconciles_against_wechatpay_over_https(production_platform, wechatpay):
    """The operator's reconciliation reaches WeChat Pay's trade bill (the emulator, trusted through the CA the
    process was given): payments' provider is WeChat Pay, not the sandbox bank."""
    caller = staff_session(production_platform, "127.0.0.62")
    day = business_day(utcnow() - timedelta(days=1))
    before = len(wechatpay.requests)
    answer = caller.get(production_platform.gateway_url + f"/api/v1/payment-reconciliations/{day.isoformat()}",
                        timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["provider"] == "wechatpay"
    assert [path for _method, path, _status in wechatpay.requests[before:]
            if path.startswith("/v3/bill/tradebill")], wechatpay.requests[before:]


def test_a_forged_wechatpay_notification_is_refused(production_platform):
    """The notification route verifies WeChat Pay's signature: an unsigned body changes nothing."""
    answer = client_from("127.0.0.63").post(
        production_platform.gateway_url + "/api/v1/payments/notifications/wechatpay", timeout=15,
        json={"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": {}},
        headers={"Wechatpay-Timestamp": str(int(utcnow().timestamp())), "Wechatpay-Nonce": "n" * 32,
                 "Wechatpay-Serial": "PUB_KEY_ID_FORGED", "Wechatpay-Signature": "Zm9yZ2Vk"})
    assert 400 <= answer.status_code < 500, answer.text


def test_a_candidate_registers_through_tencent_sms_is_confirmed_through_faceid_and_checked_at_the_registry(
        production_platform, tencent_sms, faceid, degree_registry):
    """The code reaches the candidate through Tencent Cloud SMS (the registration template, under the approved
    signature); the only online confirmation is FaceID's liveness session (the sandbox's evidence route is
    refused); the prior degree is found by the authority's registry over its signed contract."""
    rng = random.Random()
    mobile, resident_id = random_mobile(rng), random_resident_id(rng)
    email, password = f"prod.{uuid.uuid4().hex[:10]}@example.com", f"Prod-{uuid.uuid4().hex[:12]}"
    caller = client_from("127.0.0.64")
    url = production_platform.gateway_url
    asked = caller.post(url + "/api/v1/mobile-codes", json={"mobile": mobile, "purpose": "registration"}, timeout=15)
    assert asked.status_code == 202, asked.text
    (text,) = wait_for(lambda: tencent_sms.sent_to("+86" + mobile), what="the registration code at Tencent Cloud SMS")
    assert (text.template_id, text.sign_name, text.sdk_app_id) == (TEMPLATES["registration"], SIGN_NAME, SMS_APP_ID)
    code = text.params[0]
    registered = caller.post(url + "/api/v1/candidates", timeout=15, json={
        "full_name": "王小明", "resident_id_number": resident_id, "mobile": mobile, "mobile_code": code,
        "email": email, "password": password, "exam_region": "11", "degree_upgrade": True})
    assert registered.status_code == 201, registered.text
    token = caller.post(url + "/api/v1/auth/login", json={"login": email, "password": password},
                        timeout=15).json()["access_token"]
    caller.headers["Authorization"] = f"Bearer {token}"
    evidence = caller.post(url + "/api/v1/me/identity-confirmation", timeout=15, json={
        "method": "online", "id_card_image_ref": "upload/a.jpg", "liveness_ref": "liveness/a.mp4"})
    assert evidence.status_code == 409 and evidence.json()["error"]["code"] == "liveness_session_required", \
        evidence.text
    session = caller.post(url + "/api/v1/me/identity-confirmation/sessions", timeout=30)
    assert session.status_code == 201, session.text
    assert session.json()["url"].startswith(faceid.base_url + "/h5/")
    biz_token = session.json()["url"].rsplit("/", 1)[1]
    faceid.complete(biz_token, "pass")
    confirmed = caller.post(url + "/api/v1/me/identity-confirmation/sessions/confirmation", timeout=30,
                            json={"biz_token": biz_token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed" and confirmed.json()["ticket_number"]
    degree_number = "".join(rng.choice("0123456789") for _ in range(18))
    degree_registry.add(degree_number, "王小明", resident_id)
    checked = caller.post(url + "/api/v1/me/prior-education", json={"degree_certificate_number": degree_number},
                          timeout=30)
    assert checked.status_code == 200, checked.text
    assert checked.json()["prior_education_status"] == "verified"
    assert [r for r in degree_registry.requests if r.get("status") == 200], degree_registry.requests
