"""docker-compose.yml, deploy/Dockerfile and the PostgreSQL init script, checked against the code.

No Docker engine is needed: the compose file is read as YAML and compared with the process table
(``deploy.processes.PROCESSES``), the ``${ENV:default}`` names each process's config file reads and the
secret rule of ``credence_common.config``; Prometheus' scrape targets are compared with the processes'
metrics ports. The contents of the Prometheus and Grafana files are checked in test_observability.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from credence_common.persistence.migrations import SERVICES as MIGRATED_SERVICES
from credence_common.persistence.migrations import db_uri_from_environment
from deploy.processes import BY_NAME, PROCESSES, SERVICE_NAMES, ProcessSpec
from tests.unit.process_config import env_names_read, secret_env_names

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

INFRASTRUCTURE = {"rabbitmq", "postgres", "migrate", "broker-users", "prometheus", "grafana"}
COMPOSE_ONLY_ENV = {"CREDENCE_ENV"}  # read by credence_common.config, not through a config file
MIGRATE_COMMAND = ["python", "-m", "credence_common.persistence.migrations", "all"]

REQUIRED_FROM_HOST = re.compile(r"^\$\{([A-Z0-9_]+):\?[^}]+\}$")
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")
PYTHON_PATCH_RELEASE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+$")
PINNED_EXAMPLE = "python:3.11.14-slim-bookworm"
CREATE_DATABASE = re.compile(r"^\s*CREATE\s+DATABASE\s+\"?([a-z0-9_]+)\"?\s*;", re.IGNORECASE | re.MULTILINE)

RABBITMQ_METRICS_TARGET = "rabbitmq:15692"  # rabbitmq_prometheus, enabled in the official image

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


def test_the_images_default_command_is_the_gateways():
    # an image run without a command (docker run credence) serves the gateway the process table names
    cmd = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    assert len(cmd) == 1 and json.loads(cmd[0][len("CMD "):]) == BY_NAME["gateway"].command(python="python")


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
    # staging: every secret must be real; the degree-registry and payment sandboxes are still allowed because no
    # real adapter exists yet (production refuses them), the identity-verification one is not
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
    assert {"JWT_SECRET", "BOOTSTRAP_STAFF_PASSWORD", "PAYMENT_SANDBOX_SIGNING_KEY", "CERTIFICATES_DATA_KEYS",
            "SCORING_DATA_KEYS", "PAYMENTS_DATA_KEYS"} <= found


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


def test_every_process_serves_metrics_on_a_port_of_its_own(services):
    # the gateway's API port is public: its metrics (every route's traffic and errors) stay off it
    assert METRICS_PROCESSES == list(PROCESSES)
    gateway = environment(services["gateway"])
    assert int(gateway["GATEWAY_METRICS_PORT"]) != int(gateway["GATEWAY_ADDRESS"].rsplit(":", 1)[1])


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
    # certificates' migration 0007, scoring's 0012 and payments' 0005 encrypt existing rows: with the service's
    # keys, the dev key refused
    for service in ("certificates", "scoring", "payments"):
        own = environment(services[service])
        assert env["CREDENCE_ENV"] == own["CREDENCE_ENV"] == "staging"
        for name in (f"{service.upper()}_DATA_KEYS", f"{service.upper()}_DATA_ACTIVE_KEY_ID"):
            assert env[name] == own[name], name
        assert REQUIRED_FROM_HOST.match(env[f"{service.upper()}_DATA_KEYS"])


@pytest.mark.parametrize("spec", SERVICE_PROCESSES, ids=ids)
def test_service_uses_the_database_migrate_migrated(services, spec):
    assert environment(services[spec.name])[spec.db_env] == environment(services["migrate"])[spec.db_env]


# --- observability -------------------------------------------------------------------------------

def bind_mounts(service: dict) -> dict[str, Path]:
    """A compose service's bind mounts (short syntax, host path first): container path -> host path."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, _, rest = str(entry).partition(":")
        if source.startswith((".", "/")):
            mounts[rest.split(":")[0]] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def host_path(service: dict, container_path: str) -> Path:
    """Where a container path of a compose service comes from on the host, through its bind mounts."""
    for target, source in sorted(bind_mounts(service).items(), key=lambda item: -len(item[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the repository")


def command_option(service: dict, option: str) -> str:
    for argument in service.get("command") or []:
        if str(argument).startswith(option + "="):
            return str(argument).split("=", 1)[1]
    raise AssertionError(f"the command does not set {option}")


@pytest.fixture(scope="module")
def prometheus_config(services) -> dict:
    config_file = host_path(services["prometheus"], command_option(services["prometheus"], "--config.file"))
    assert config_file.is_file(), f"{config_file} does not exist"
    return yaml.safe_load(config_file.read_text(encoding="utf-8"))


def scraped(config: dict) -> dict[str, set[tuple[str, str]]]:
    """Every scrape job: its (target, metrics path) pairs."""
    return {job["job_name"]: {(target, job.get("metrics_path", "/metrics"))
                              for static in job.get("static_configs", []) for target in static["targets"]}
            for job in config["scrape_configs"]}


def expected_process_targets(services) -> dict[str, tuple[str, str]]:
    """Each process's metrics endpoint, from the compose environment: its metrics port (the gateway's too: its
    API port does not serve /metrics)."""
    return {spec.name: (f"{spec.name}:{environment(services[spec.name])[spec.metrics_port_env]}", "/metrics")
            for spec in PROCESSES}


def published(service: dict) -> list[str]:
    return [str(entry) for entry in service.get("ports") or []]


def test_prometheus_scrapes_every_process_and_rabbitmq_and_nothing_else(services, prometheus_config):
    jobs = scraped(prometheus_config)
    expected = expected_process_targets(services)
    for name, endpoint in expected.items():
        assert jobs.get(name) == {endpoint}, f"job {name} must scrape exactly {endpoint}, not {jobs.get(name)}"
    others = {name: pairs for name, pairs in jobs.items() if name not in expected}
    assert others, "RabbitMQ is not scraped"
    for name, pairs in others.items():
        assert {target for target, _path in pairs} == {RABBITMQ_METRICS_TARGET}, f"job {name} scrapes {pairs}"
    paths = {path for pairs in others.values() for _target, path in pairs}
    assert paths == {"/metrics", "/metrics/detailed"}, "RabbitMQ: its health, and the per-queue figures"


@pytest.mark.parametrize("spec", METRICS_PROCESSES, ids=ids)
def test_compose_uses_the_process_tables_metrics_ports(services, spec):
    # prometheus.yml names the ports, so compose and the process table must agree on them
    assert int(environment(services[spec.name])[spec.metrics_port_env]) == spec.default_metrics_port


def test_prometheus_targets_are_compose_services(services, prometheus_config):
    for pairs in scraped(prometheus_config).values():
        for target, _path in pairs:
            assert target.split(":")[0] in services, f"{target} is not a compose service"


def test_the_prometheus_mount_carries_its_alert_rules(services, prometheus_config):
    prometheus = services["prometheus"]
    config_path = command_option(prometheus, "--config.file")
    rule_files = prometheus_config.get("rule_files") or []
    assert rule_files, "prometheus.yml loads no alert rules"
    for rule_file in rule_files:
        in_container = str(Path(config_path).parent / rule_file)
        assert host_path(prometheus, in_container).is_file(), f"{rule_file} is not mounted next to prometheus.yml"


def test_grafana_provisions_the_prometheus_of_compose_and_the_dashboards(services):
    grafana = services["grafana"]
    datasources_dir = host_path(grafana, "/etc/grafana/provisioning/datasources")
    providers_dir = host_path(grafana, "/etc/grafana/provisioning/dashboards")
    sources = [source for path in sorted(datasources_dir.glob("*.yml"))
               for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]]
    assert [source["type"] for source in sources] == ["prometheus"]
    url = urlsplit(sources[0]["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    providers = [provider for path in sorted(providers_dir.glob("*.yml"))
                 for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]]
    assert providers, "no dashboard provider"
    for provider in providers:
        assert provider["type"] == "file"
        dashboards = sorted(host_path(grafana, provider["options"]["path"]).glob("*.json"))
        assert dashboards, f"nothing mounted at {provider['options']['path']}"
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert host_path(grafana, home).is_file()


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_every_bind_mount_exists_and_is_read_only(services, name):
    mounts = [str(entry) for entry in services[name].get("volumes") or [] if str(entry).startswith((".", "/"))]
    assert mounts
    for mount in mounts:
        source = (COMPOSE_FILE.parent / mount.split(":")[0]).resolve()
        assert source.exists() and source.is_relative_to(REPO_ROOT / "deploy" / "observability"), mount
        assert mount.endswith(":ro"), f"{mount}: the containers only read these"


@pytest.mark.parametrize("name, port", [("prometheus", 9090), ("grafana", 3000)])
def test_observability_is_published_on_loopback_only(services, name, port):
    assert published(services[name]) == [f"127.0.0.1:{port}:{port}"]


@pytest.mark.parametrize("name, image", [("prometheus", r"prom/prometheus:v2\.\d+\.\d+"),
                                         ("grafana", r"grafana/grafana(-oss)?:\d+\.\d+\.\d+")])
def test_observability_images_are_pinned(services, name, image):
    assert re.fullmatch(image, services[name]["image"]), services[name]["image"]


def test_grafana_needs_a_password_from_the_host(services):
    env = environment(services["grafana"])
    required = REQUIRED_FROM_HOST.match(env.get("GF_SECURITY_ADMIN_PASSWORD", ""))
    assert required, "GF_SECURITY_ADMIN_PASSWORD must be '${NAME:?...}', never a default"
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"
    assert env.get("GF_USERS_ALLOW_SIGN_UP") == "false"


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


def dockerfile_stages() -> list[dict]:
    """Each build stage: its base image, its name (``AS``) and its instructions after FROM."""
    stages = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"base": words[0], "name": name, "instructions": []})
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1]["instructions"].append((keyword, rest))
    return stages


def stage_env(stage: dict) -> dict[str, str]:
    env = {}
    for keyword, rest in stage["instructions"]:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in rest.split() if "=" in item)
    return env


def test_every_stage_builds_on_one_python_311_patch_release():
    stages = dockerfile_stages()
    names = {stage["name"] for stage in stages if stage["name"]}
    bases = [stage["base"] for stage in stages if stage["base"] not in names]
    assert bases, "no FROM"
    for base in bases:
        assert PYTHON_PATCH_RELEASE.match(base), f"{base}: pin the patch and Debian releases, e.g. {PINNED_EXAMPLE}"
    assert len(set(bases)) == 1, f"the wheels are built for one interpreter: use the same base everywhere: {bases}"


def test_a_builder_stage_builds_wheels_of_the_project():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build wheels in a builder stage, install them in the runtime stage"
    builder = next((stage for stage in stages if stage["name"] == "builder"), None)
    assert builder is not None and builder is not stages[-1], "no stage named builder before the runtime stage"
    copied = {part.rstrip("/") for keyword, rest in builder["instructions"] if keyword == "COPY"
              for part in rest.split()[:-1]}
    needed = {"pyproject.toml", "credence_common", "services", "gateway", "deploy"}
    assert "." in copied or needed <= copied, f"the builder lacks {sorted(needed - copied)}"
    runs = [rest for keyword, rest in builder["instructions"] if keyword == "RUN"]
    assert any(re.search(r"\bpip wheel\b.*(\s|^)\.(\s|$)", run) for run in runs), "the builder must 'pip wheel .'"


def test_the_runtime_stage_installs_only_the_builders_wheels():
    runtime = dockerfile_stages()[-1]
    installs = [rest for keyword, rest in runtime["instructions"] if keyword == "RUN" and "pip install" in rest]
    assert len(installs) == 1, f"one pip install in the runtime stage: {installs}"
    install = installs[0]
    assert "--no-index" in install, "the runtime stage must not download anything"
    mounted = re.search(r"--mount=type=bind,(?=[^ ]*from=builder)[^ ]*target=(\S+?)(,|\s)", install)
    copied = [rest for keyword, rest in runtime["instructions"] if keyword == "COPY" and "--from=builder" in rest]
    assert mounted or copied, "install the wheels from the builder stage (RUN --mount=...,from=builder or COPY --from)"
    if mounted:
        assert f"--find-links={mounted.group(1)}" in install or f"--find-links {mounted.group(1)}" in install
    no_cache = stage_env(runtime).get("PIP_NO_CACHE_DIR") in ("1", "true", "on") or "--no-cache-dir" in install
    assert no_cache, "no pip cache in the image"
    for keyword, rest in runtime["instructions"]:
        assert not (keyword == "RUN" and re.search(r"\b(gcc|build-essential|pip wheel)\b", rest)), rest


def test_the_runtime_stage_holds_the_source_tree_the_runner_reads():
    runtime = dockerfile_stages()[-1]
    copied = {part.rstrip("/") for keyword, rest in runtime["instructions"] if keyword == "COPY"
              for part in rest.split()[:-1] if not part.startswith("--")}
    needed = {"credence_common", "services", "gateway", "deploy"}
    assert "." in copied or needed <= copied, f"the runtime stage lacks {sorted(needed - copied)}"


def test_dockerfile_runs_as_a_non_root_user():
    runtime = dockerfile_stages()[-1]
    users = [rest.split(":")[0] for keyword, rest in runtime["instructions"] if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    assert users[-1] == "10001", "numeric, so that Kubernetes' runAsNonRoot can verify it"


def test_dockerfile_logs_json_in_production():
    env = stage_env(dockerfile_stages()[-1])
    assert env.get("LOG_FORMAT") == "json"
    assert env.get("CREDENCE_ENV") == "production"


def test_dockerignore_keeps_the_sources_in_the_build_context():
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    assert ".venv" in ignored and ".git" in ignored
    assert not ignored & {"pyproject.toml", "credence_common", "credence_cli", "services", "gateway", "deploy", "."}
    assert "deploy/observability" in ignored, "Prometheus' and Grafana's files do not belong in the application image"


# --- one broker user per process (deploy/broker_users.py) ---------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_each_process_connects_as_its_own_broker_user_made_before_it_starts(services, spec):
    from deploy import broker_users

    uri = environment(services[spec.name])["AMQP_URI"]
    assert urlsplit(interpolate(uri)).username == broker_users.user_name(spec.name)
    assert f"${{{broker_users.password_variable(spec.name)}:?" in uri
    assert services[spec.name]["depends_on"]["broker-users"]["condition"] == "service_completed_successfully"
    job = services["broker-users"]
    assert job["command"] == ["python", "-m", "deploy.broker_users", "apply"]
    assert broker_users.password_variable(spec.name) in environment(job)
