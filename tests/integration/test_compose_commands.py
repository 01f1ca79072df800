"""docker-compose.yml's commands, run here without Docker: each with the environment compose gives it (hosts
pointed at this machine's PostgreSQL and RabbitMQ, every required secret filled in), so a variable the compose
file forgot, or a command that does not start under its CREDENCE_ENV, fails here rather than on a server."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import yaml
from sqlalchemy import create_engine, text

from credence_common.persistence.db import normalise_db_uri
from credence_common.security.actor_tokens import new_key_pair
from deploy import broker_users
from deploy.platform import free_port
from deploy.processes import PROCESSES
from tests.integration.conftest import POSTGRES_ADMIN_URI

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")
LOCAL_PG = urlsplit(POSTGRES_ADMIN_URI)


USER_SUFFIX = "-" + uuid.uuid4().hex[:8]
ACTOR_KEYS = dict(zip(("ACTOR_SIGNING_KEY", "ACTOR_VERIFY_KEYS"), new_key_pair("a1"), strict=True))


def host_value(name: str) -> str:
    """What an operator would export for a required variable: real-looking, URL-safe, never a dev default."""
    if name in ACTOR_KEYS:  # the output of `credence actor-keys`
        return ACTOR_KEYS[name]
    if name.endswith("_KEYS"):
        return "k1=" + secrets.token_hex(32)
    if name.endswith("_URL"):
        return "http://127.0.0.1:9/sms"  # nothing is texted in this test
    return secrets.token_hex(24)


def interpolate(value: str, host: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if name in host:
            return host[name]
        if operator and operator.endswith("-"):
            return argument
        raise AssertionError(f"${{{name}}} has no default and is not required from the host")

    return VARIABLE.sub(replace, value)


def local(uri: str, databases: dict[str, str], amqp_uri: str) -> str:
    """A compose URI pointed at this machine: the postgres service's database -> a fresh one here; the
    rabbitmq service -> the test's vhost, as the same broker user with the test's suffix (users are broker-wide;
    see broker_users_on)."""
    parts = urlsplit(uri)
    if parts.hostname == "postgres":
        database = databases[parts.path.lstrip("/")]
        return urlunsplit((parts.scheme, LOCAL_PG.netloc, f"/{database}", "", ""))
    if parts.hostname == "rabbitmq":
        test = urlsplit(amqp_uri)
        netloc = f"{parts.username}{USER_SUFFIX}:{parts.password}@{test.hostname}:{test.port or 5672}"
        return urlunsplit((test.scheme, netloc, test.path, "", ""))
    return uri


def compose_environment(service: str, host: dict[str, str], databases: dict[str, str], amqp_uri: str) -> dict:
    env = {key: "" if value is None else str(value) for key, value in COMPOSE[service].get("environment", {}).items()}
    env = {key: local(interpolate(value, host), databases, amqp_uri) for key, value in env.items()}
    # the process sees nothing of this machine's environment but what a container would have
    keep = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {**keep, **env, "PYTHONPATH": str(REPO_ROOT)}


def command(service: str) -> list[str]:
    argv = list(COMPOSE[service]["command"])
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest.fixture
def compose_databases():
    admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
    names = {name: f"credence_compose_{name}_{uuid.uuid4().hex[:8]}"
             for name in ("identity", "scoring", "certificates", "payments", "verification")}
    with admin.connect() as connection:
        for database in names.values():
            connection.execute(text(f'CREATE DATABASE "{database}"'))
    yield names
    with admin.connect() as connection:
        for database in names.values():
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


def required_from_host() -> set[str]:
    found = set()
    for service in COMPOSE.values():
        for value in (service.get("environment") or {}).values():
            found |= {m.group(1) for m in VARIABLE.finditer(str(value)) if m.group(2) == ":?"}
    return found


def test_the_migrate_job_and_every_process_start_with_the_environment_compose_gives_them(
        compose_databases, rabbit_config, tmp_path, request):
    host = {name: host_value(name) for name in required_from_host()}
    amqp_uri = rabbit_config["AMQP_URI"]
    # what the broker-users job does in compose, on the test's vhost
    broker_users_made = broker_users.apply(
        request.config.getoption("RABBIT_API_URI"),
        {p: host[broker_users.password_variable(p)] for p in broker_users.PRINCIPALS},
        vhost=rabbit_config["vhost"], suffix=USER_SUFFIX)
    request.addfinalizer(lambda: [requests.delete(f"{request.config.getoption('RABBIT_API_URI').rstrip('/')}"
                                                  f"/api/users/{name}", timeout=10) for name in broker_users_made])

    migrate = subprocess.run(command("migrate"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                             env=compose_environment("migrate", host, compose_databases, amqp_uri))
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    for database in compose_databases.values():
        engine = create_engine(normalise_db_uri(urlunsplit(("postgresql", LOCAL_PG.netloc, f"/{database}", "", ""))))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()

    started = []
    try:
        for spec in PROCESSES:
            env = compose_environment(spec.name, host, compose_databases, amqp_uri)
            assert env.get("CREDENCE_ENV") == "staging"
            port = free_port()
            if spec.name == "gateway":  # ready when its API port says so; its metrics port must be free too
                env["GATEWAY_ADDRESS"] = f"127.0.0.1:{port}"
                env[spec.metrics_port_env] = str(free_port())
            else:
                env[spec.metrics_port_env] = str(port)
            log = open(tmp_path / f"{spec.name}.log", "wb")
            started.append((spec, port, subprocess.Popen(command(spec.name), cwd=REPO_ROOT, env=env, stdout=log,
                                                        stderr=subprocess.STDOUT)))
        for spec, port, process in started:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, f"{spec.name} exited {process.returncode}:\n" + \
                    (tmp_path / f"{spec.name}.log").read_text()[-3000:]
                try:
                    if requests.get(f"http://127.0.0.1:{port}/ready", timeout=3).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, f"{spec.name} not ready in 60 s"
                time.sleep(0.3)
    finally:
        for _spec, _port, process in started:
            process.send_signal(signal.SIGTERM)
        for spec, _port, process in started:
            try:
                assert process.wait(timeout=40) == 0, f"{spec.name} did not stop cleanly"
            except subprocess.TimeoutExpired:
                process.kill()
                raise
