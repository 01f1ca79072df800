"""End-to-end fixtures: the whole platform as separate processes (as ``make run`` starts it) on a
fresh RabbitMQ vhost, on SQLite files and again on PostgreSQL databases."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from credence_common.persistence.db import normalise_db_uri
from credence_common.security.actor_tokens import new_key_pair
from deploy.platform import REPO_ROOT, Platform, free_port, quiet_client_logging
from deploy.processes import PROCESSES, SERVICE_NAMES

MANAGEMENT = os.environ.get("RABBIT_CTL_URI", "http://guest:guest@127.0.0.1:15672").rstrip("/")
POSTGRES_ADMIN_URI = os.environ.get("CREDENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRETS = {
    "JWT_SECRET": "e2e-jwt-secret",
    "BOOTSTRAP_STAFF_PASSWORD": "e2e-staff-password",
    "PAYMENT_SANDBOX_SIGNING_KEY": "e2e-sandbox-signing-key",
    "VERIFICATION_REPORT_SIGNING_KEY": "e2e-verification-report-key",
}


# Every platform runs on both backends with the default gateway (GATEWAY_SERVER unset: asgi, gateway/asgi.py). A
# test module that sets ``ALSO_ON_THE_NAMEKO_GATEWAY = True`` runs a third time against the nameko gateway
# (gateway/service.py, kept as the way back), on one backend only: the gateway does not touch the databases, and
# each variant costs a platform start and the module.
BACKENDS = ("sqlite", "postgresql")
NAMEKO_VARIANT = "sqlite/nameko"


def platform_variants(module) -> list[str]:
    return [*BACKENDS, *([NAMEKO_VARIANT] if getattr(module, "ALSO_ON_THE_NAMEKO_GATEWAY", False) else [])]


def variant_settings(variant: str) -> tuple[str, dict[str, str]]:
    """("sqlite", {}) or ("sqlite", {"GATEWAY_SERVER": "nameko"}): the backend, and what the variant sets."""
    backend, _, server = variant.partition("/")
    return backend, ({"GATEWAY_SERVER": server} if server else {})


def parametrize_platform(metafunc, fixture: str, scope: str) -> None:
    if fixture in metafunc.fixturenames:
        metafunc.parametrize(fixture, platform_variants(metafunc.module), indirect=True, scope=scope)


def pytest_generate_tests(metafunc):
    parametrize_platform(metafunc, "platform", "module")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _management(method: str, path: str, **kwargs):
    response = requests.request(method, MANAGEMENT + path, timeout=10, **kwargs)
    response.raise_for_status()
    return response


@contextlib.contextmanager
def running_platform(backend: str, workdir: Path, **overrides: str):
    """The whole platform on a fresh vhost and fresh databases of ``backend``; ``overrides`` replace the
    test environment's settings (the security tests run with production-like limits)."""
    quiet_client_logging()
    vhost = f"credence_e2e_{uuid.uuid4().hex[:10]}"
    _management("PUT", f"/api/vhosts/{vhost}")
    _management("PUT", f"/api/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_URI")}
    env.update(SECRETS)
    env.update({
        "CREDENCE_ENV": "development",  # said, never assumed: an unset one refuses to start
        "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
        "OUTBOX_POLL_INTERVAL": "0.2",
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "100000",
        "CHECKS_PER_NUMBER_PER_MINUTE": "100000",
        "REPORT_DELAY_WORKING_DAYS": "0",  # the holder's report opens on the day of payment, not 3 working days on
    })
    env.update({
        "PUBLIC_BASE_URL": "http://" + env["GATEWAY_ADDRESS"],
        "PYTHONPATH": str(REPO_ROOT),
    })
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    env.update(overrides)
    broker_user = None
    if env.get("CREDENCE_ENV") != "development":
        # staging and production refuse RabbitMQ's guest user and the development actor key (docs/security.md)
        broker_user, password = f"credence-e2e-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        _management("PUT", f"/api/users/{broker_user}", json={"password": password, "tags": ""})
        _management("PUT", f"/api/permissions/{vhost}/{broker_user}",
                    json={"configure": ".*", "write": ".*", "read": ".*"})
        env["AMQP_URI"] = f"pyamqp://{broker_user}:{password}@127.0.0.1:5672/{vhost}"
        signing, verifying = new_key_pair(f"e2e{uuid.uuid4().hex[:6]}")
        env.setdefault("ACTOR_SIGNING_KEY", signing)
        env.setdefault("ACTOR_VERIFY_KEYS", verifying)
    databases = []
    admin = None
    if backend == "postgresql":
        admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
    for service in SERVICE_NAMES:
        if backend == "sqlite":
            env[f"{service.upper()}_DB_URI"] = f"sqlite:///{workdir / service}.sqlite"
        else:
            name = f"credence_e2e_{service}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            databases.append(name)
            env[f"{service.upper()}_DB_URI"] = POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"

    instance = Platform(env, workdir / "log")
    instance.backend = backend
    try:
        instance.migrate()
        instance.start()
        yield instance
    finally:
        instance.stop()
        if admin is not None:
            with admin.connect() as connection:
                for name in databases:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        _management("DELETE", f"/api/vhosts/{vhost}")
        if broker_user is not None:
            _management("DELETE", f"/api/users/{broker_user}")


@pytest.fixture(scope="module")
def platform(request, tmp_path_factory):
    """parametrized by ``pytest_generate_tests``: the backends, and the nameko gateway where a module asks for it"""
    backend, settings = variant_settings(request.param)
    with running_platform(backend, tmp_path_factory.mktemp(f"platform-{request.param.replace('/', '-')}"),
                          **settings) as instance:
        yield instance


@pytest.fixture(scope="module")
def journey(platform):
    from deploy.journey import run_journey

    lines: list[str] = []
    result = run_journey(platform.gateway_url, say=lines.append,
                         staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"])
    result["lines"] = lines
    return result
