"""docker-compose.yml, deploy/Dockerfile and the PostgreSQL init script, checked against the code.

No Docker engine is needed: the compose file is read as YAML and compared with the process table
(``deploy.processes.PROCESSES``), the ``${ENV:default}`` names each process's config file reads and the
secret rule of ``credence_common.config``.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from credence_common.config import SECRET_SUFFIXES
from credence_common.migrations import SERVICES as MIGRATED_SERVICES
from credence_common.migrations import db_uri_from_environment
from deploy.processes import PROCESSES, SERVICE_NAMES, ProcessSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

INFRASTRUCTURE = {"rabbitmq", "postgres", "migrate"}
COMPOSE_ONLY_ENV = {"CREDENCE_ENV"}  # read by credence_common.config, not through a config file
MIGRATE_COMMAND = ["python", "-m", "credence_common.migrations", "all"]

ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)")
SETTING_FROM_ENV = re.compile(r"^([A-Za-z0-9_]+)\s*:\s*(?:!raw_env_var\s+)?\$\{([A-Z0-9_]+)", re.MULTILINE)
REQUIRED_FROM_HOST = re.compile(r"^\$\{([A-Z0-9_]+):\?[^}]+\}$")
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")
CREATE_DATABASE = re.compile(r"^\s*CREATE\s+DATABASE\s+\"?([a-z0-9_]+)\"?\s*;", re.IGNORECASE | re.MULTILINE)

SERVICE_PROCESSES = [spec for spec in PROCESSES if spec.db_env is not None]
METRICS_PROCESSES = [spec for spec in PROCESSES if spec.metrics_port_env is not None]


def ids(spec: ProcessSpec) -> str:
    return spec.name


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    """A compose service's environment, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def interpolate(value: str) -> str:
    """Resolve compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}`` as compose would with a
    placeholder for every required value, so that URIs can be parsed."""

    def replace(match: re.Match) -> str:
        operator, argument = match.group(2), match.group(3)
        if operator and operator.endswith("-"):
            return argument
        return "placeholder"

    return COMPOSE_VARIABLE.sub(replace, value)


def config_text(spec: ProcessSpec) -> str:
    return (REPO_ROOT / spec.config).read_text(encoding="utf-8")


def env_names_read(spec: ProcessSpec) -> set[str]:
    return set(ENV_REFERENCE.findall(config_text(spec)))


def secret_env_names(spec: ProcessSpec) -> set[str]:
    """Environment variables behind the config's secret settings (``*_SECRET``, ``*_PASSWORD``, ``*_KEY``)."""
    return {env_name for setting, env_name in SETTING_FROM_ENV.findall(config_text(spec))
            if setting.upper().endswith(SECRET_SUFFIXES)}


def db_uri_keys(env: dict) -> list[str]:
    return sorted(key for key in env if key.endswith("_DB_URI"))


def database_of(uri: str) -> tuple[str, str | None, str]:
    parts = urlsplit(interpolate(uri))
    return parts.scheme, parts.hostname, parts.path.lstrip("/")


def published_container_ports(service: dict) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


# --- the process table ---------------------------------------------------------------------------

def test_compose_runs_every_process_and_only_the_infrastructure_besides(services):
    assert set(services) == {spec.name for spec in PROCESSES} | INFRASTRUCTURE


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_command_is_the_process_table_command(services, spec):
    assert (REPO_ROOT / spec.config).is_file(), f"{spec.config} does not exist"
    assert services[spec.name]["command"] == spec.command(python="python")


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_process_runs_the_project_image(services, spec):
    build = services[spec.name].get("build")
    assert isinstance(build, dict), f"{spec.name} must be built from deploy/Dockerfile"
    assert (REPO_ROOT / build.get("context", ".") / build["dockerfile"]).resolve() == DOCKERFILE


# --- environment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_process_talks_to_the_compose_broker(services, spec):
    env = environment(services[spec.name])
    assert "AMQP_URI" in env, f"{spec.name} has no AMQP_URI"
    parts = urlsplit(interpolate(env["AMQP_URI"]))
    assert parts.scheme in ("amqp", "pyamqp")
    assert parts.hostname == "rabbitmq"
    assert parts.port == 5672
    assert parts.username and parts.username != "guest", "RabbitMQ's guest user may only connect from localhost"


@pytest.mark.parametrize("spec", SERVICE_PROCESSES, ids=ids)
def test_service_gets_only_its_own_database(services, spec):
    env = environment(services[spec.name])
    assert db_uri_keys(env) == [spec.db_env]
    scheme, host, database = database_of(env[spec.db_env])
    assert scheme == "postgresql"
    assert host == "postgres"
    assert database == spec.name


def test_gateway_has_no_database(services):
    gateway = [spec for spec in PROCESSES if spec.name == "gateway"]
    assert gateway and gateway[0].db_env is None
    assert db_uri_keys(environment(services["gateway"])) == []


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_process_runs_with_real_secrets_required(services, spec):
    # staging: every secret must be real; the identity-verification and degree-registry sandboxes are
    # still allowed because no real adapter exists yet (production refuses them)
    assert environment(services[spec.name]).get("CREDENCE_ENV") == "staging"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_secrets_are_required_from_the_host(services, spec):
    env = environment(services[spec.name])
    for name in sorted(secret_env_names(spec)):
        assert name in env, f"{spec.name}: {spec.config} reads the secret {name} but compose does not set it"
        required = REQUIRED_FROM_HOST.match(env[name])
        assert required, f"{spec.name}: {name} must be '${{{name}:?...}}' so that no dev default is used"
        assert required.group(1) == name


def test_the_secret_scan_finds_the_secrets():
    """Guards the scan itself: if the regex stopped matching, the test above would pass vacuously."""
    found = set().union(*(secret_env_names(spec) for spec in PROCESSES))
    assert {"JWT_SECRET", "BOOTSTRAP_STAFF_PASSWORD", "PAYMENT_SANDBOX_SIGNING_KEY"} <= found


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_compose_sets_only_names_the_config_reads(services, spec):
    read = env_names_read(spec)
    assert "AMQP_URI" in read, f"could not find the ${{NAME:...}} references in {spec.config}"
    unknown = set(environment(services[spec.name])) - read - COMPOSE_ONLY_ENV
    assert not unknown, f"{spec.name}: {sorted(unknown)} are not read by {spec.config} (misspelt?)"


# --- ports ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", METRICS_PROCESSES, ids=ids)
def test_metrics_port_is_set_and_published(services, spec):
    env = environment(services[spec.name])
    assert spec.metrics_port_env in env, f"{spec.name} does not set {spec.metrics_port_env}"
    port = int(env[spec.metrics_port_env])
    assert port > 0
    assert port in published_container_ports(services[spec.name])


def test_metrics_ports_are_distinct(services):
    ports = [int(environment(services[spec.name])[spec.metrics_port_env]) for spec in METRICS_PROCESSES]
    assert len(ports) == len(set(ports)) == len(METRICS_PROCESSES)


def test_gateway_listens_on_all_interfaces_and_is_published(services):
    gateway = services["gateway"]
    assert environment(gateway).get("GATEWAY_ADDRESS") == "0.0.0.0:8000"
    assert 8000 in published_container_ports(gateway)


# --- start order ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_process_starts_after_healthy_infrastructure_and_migrations(services, spec):
    depends_on = services[spec.name].get("depends_on")
    assert isinstance(depends_on, dict), "use the long depends_on form with conditions"
    assert depends_on.get("rabbitmq", {}).get("condition") == "service_healthy"
    assert depends_on.get("postgres", {}).get("condition") == "service_healthy"
    assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully"


@pytest.mark.parametrize("name, image", [("rabbitmq", "rabbitmq:3.10-management"), ("postgres", "postgres:15")])
def test_infrastructure_has_healthchecks(services, name, image):
    assert services[name]["image"] == image
    test = services[name].get("healthcheck", {}).get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


# --- databases and migrations --------------------------------------------------------------------

def test_postgres_init_script_creates_one_database_per_service(services):
    mounts = [str(volume) for volume in services["postgres"].get("volumes", [])]
    scripts = [mount.split(":")[0] for mount in mounts if ":/docker-entrypoint-initdb.d/" in mount]
    assert len(scripts) == 1, f"mount exactly one init script into /docker-entrypoint-initdb.d/: {mounts}"
    script = (REPO_ROOT / scripts[0]).resolve()
    assert script.is_file() and script.is_relative_to(REPO_ROOT / "deploy")
    assert sorted(CREATE_DATABASE.findall(script.read_text(encoding="utf-8"))) == sorted(SERVICE_NAMES)


def test_migrate_job_migrates_every_service_database(services):
    migrate = services["migrate"]
    assert migrate["command"] == MIGRATE_COMMAND
    assert (REPO_ROOT / migrate["build"].get("context", ".") / migrate["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert tuple(MIGRATED_SERVICES) == tuple(SERVICE_NAMES)
    env = environment(migrate)
    assert db_uri_keys(env) == sorted(f"{name.upper()}_DB_URI" for name in SERVICE_NAMES)
    for name in SERVICE_NAMES:
        scheme, host, database = database_of(db_uri_from_environment(name, env))
        assert (scheme, host, database) == ("postgresql", "postgres", name)
    assert migrate.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy"


@pytest.mark.parametrize("spec", SERVICE_PROCESSES, ids=ids)
def test_service_uses_the_database_migrate_migrated(services, spec):
    assert environment(services[spec.name])[spec.db_env] == environment(services["migrate"])[spec.db_env]


# --- the image -----------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_builds_on_python_311_slim():
    assert DOCKERFILE.is_file()
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"


def test_dockerfile_installs_the_project():
    instructions = dockerfile_instructions()
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(re.search(r"\bpip install\s+\.(\s|$)", run) for run in runs), "the image must 'pip install .'"
    copied = {part.rstrip("/") for keyword, rest in instructions if keyword == "COPY" for part in rest.split()[:-1]}
    needed = {"pyproject.toml", "credence_common", "services", "gateway", "deploy"}
    assert "." in copied or needed <= copied, f"the image lacks {sorted(needed - copied)}"


def test_dockerfile_runs_as_a_non_root_user():
    users = [rest.split(":")[0] for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users, "the image must switch to a non-root USER"
    assert users[-1] not in ("root", "0")


def test_dockerignore_keeps_the_sources_in_the_build_context():
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    assert ".venv" in ignored and ".git" in ignored
    assert not ignored & {"pyproject.toml", "credence_common", "services", "gateway", "deploy", "."}
