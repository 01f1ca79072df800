"""deploy/k8s (the kustomize base and the staging and production overlays), checked against Kubernetes' schemas
and against the code.

Each of the three is rendered with ``kubectl kustomize`` (kubectl must be installed: without it these tests fail,
saying so, rather than pass by skipping; ``make test`` and ``make test-unit`` install it first, the ``kubectl``
target, tested at the end). Then:

- every object of a built-in kind is validated against the Kubernetes 1.32 JSON schemas that the
  kubernetes-validate package bundles (strict: an unknown or misspelt field is an error; no network needed);
- the RabbitmqCluster custom resource, which those schemas do not cover, gets a structural check: its spec against
  ``RABBITMQ_CLUSTER_SCHEMA`` below (the fields, types and limits of the RabbitMQ cluster operator's
  rabbitmq.com/v1beta1 API, ``api/v1beta1/rabbitmqcluster_types.go``), and its core-type parts (resources,
  affinity) against the Pod schema by placing them in a Pod;
- the manifests are compared with the code: the process table (``deploy.processes.PROCESSES``), the
  ``${ENV:default}`` names each process's config file reads, the secret rule of ``credence_common.config``,
  nameko's RPC queue names, the migrations and the production guards of identity and payments;
- the Prometheus scrape job ``rabbitmq-queues`` (``prometheus/scrape-configs.yaml``) and prometheus-adapter's rule are
  compared with compose's monitoring (``deploy/observability``, read only): the same RabbitMQ endpoint and job name
  as its Prometheus, the series its shared alert rules and dashboard use. ``promtool check config`` validates the
  scrape job (promtool must be installed: ``make promtool``).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from nameko.rpc import RPC_QUEUE_TEMPLATE

from credence_common.config import (
    ADAPTER_DEFAULTS,
    ENVIRONMENTS,
    SECRET_SUFFIXES,
    adapter_reads,
    adapter_refusal,
    assert_safe_for_environment,
    load_config,
)
from credence_common.persistence.migrations import SERVICES as MIGRATED_SERVICES
from deploy.processes import PROCESSES, ProcessSpec
from tests.unit.process_config import config_text, env_names_read, secret_env_names

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
SECRETS_EXAMPLE_DIR = K8S_DIR / "secrets.example"
ADAPTER_RULES = K8S_DIR / "prometheus-adapter" / "rules.yaml"
SCRAPE_CONFIGS = K8S_DIR / "prometheus" / "scrape-configs.yaml"
# compose's monitoring, shared with Kubernetes (owned there; only read here)
OBSERVABILITY = REPO_ROOT / "deploy" / "observability"
COMPOSE_PROMETHEUS = OBSERVABILITY / "prometheus" / "prometheus.yml"
SHARED_ALERTS = OBSERVABILITY / "prometheus" / "alerts.yml"
SHARED_DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "credence.json"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"

RENDERINGS = ("base", "overlays/staging", "overlays/production")
NAMESPACES = {"base": None, "overlays/staging": "credence-staging", "overlays/production": "credence-production"}
KUBERNETES_VERSION = "1.32"

PER_PROCESS_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
EXPECTED_KINDS = {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job",
                  "RabbitmqCluster", "User", "Permission", "TopicPermission"}
CUSTOM_KINDS = {("rabbitmq.com/v1beta1", "RabbitmqCluster"), ("rabbitmq.com/v1beta1", "User"),
                ("rabbitmq.com/v1beta1", "Permission"), ("rabbitmq.com/v1beta1", "TopicPermission")}
RABBITMQ = "credence-rabbitmq"
MIGRATE_JOB = "credence-migrate"
MIGRATE_COMMAND = ["python", "-m", "credence_common.persistence.migrations", "all"]
CONTAINER = "credence"
GATEWAY_PORT = 8000
QUEUE_METRIC = "credence_rabbitmq_queue_messages_ready"
QUEUES_JOB = "rabbitmq-queues"
RABBITMQ_METRICS_PORT = 15692  # rabbitmq_prometheus' port

# Read by credence_common itself (os.environ), not through a config file; test_direct_names_are_read checks it.
READ_DIRECTLY = ("CREDENCE_ENV", "LOG_FORMAT")
# Credentials that the secret suffix rule does not name: both URIs carry a password.
CREDENTIAL_NAMES = {"AMQP_URI"}

SERVICE_PROCESSES = [spec for spec in PROCESSES if spec.db_env is not None]
GATEWAY = next(spec for spec in PROCESSES if spec.db_env is None)

SHUTDOWN_GRACE = re.compile(r"^SHUTDOWN_GRACE_SECONDS:\s*\$\{SHUTDOWN_GRACE_SECONDS:(\d+)\}", re.MULTILINE)
PLUGIN = re.compile(r"^\w+$")  # the operator's pattern for additionalPlugins items


def ids(spec: ProcessSpec) -> str:
    return spec.name


# --- rendering -----------------------------------------------------------------------------------

@functools.cache
def render(rendering: str) -> tuple[dict, ...]:
    # the one Makefile's `make kubectl` checked: KUBECTL when given (make test KUBECTL=/opt/bin/kubectl), else PATH's
    kubectl = shutil.which(os.environ.get("KUBECTL") or "kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: these tests render deploy/k8s with `kubectl kustomize` "
                    "(kubectl 1.27 or newer, which includes kustomize v5); `make kubectl` installs it or says what to "
                    "install")
    result = subprocess.run([kubectl, "kustomize", str(K8S_DIR / rendering)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {rendering} failed:\n{result.stderr}"
    documents = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    assert documents, f"kubectl kustomize {rendering} rendered nothing"
    return documents


def objects(rendering: str, kind: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for doc in render(rendering):
        if doc["kind"] == kind:
            name = doc["metadata"]["name"]
            assert name not in found, f"{rendering}: two {kind} objects named {name}"
            found[name] = doc
    return found


def config_map(rendering: str) -> dict:
    maps = objects(rendering, "ConfigMap")
    assert len(maps) == 1, f"{rendering}: expected the one generated credence-config, found {sorted(maps)}"
    (only,) = maps.values()
    assert only["metadata"]["name"].startswith("credence-config")
    return only


def deployment(rendering: str, spec: ProcessSpec) -> dict:
    return objects(rendering, "Deployment")[spec.name]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    containers = pod_spec(workload)["containers"]
    assert [c["name"] for c in containers] == [CONTAINER], "one container, named credence (pod-defaults.yaml)"
    assert not pod_spec(workload).get("initContainers")
    return containers[0]


def env_sources(rendering: str, workload: dict) -> dict[str, tuple[str, ...]]:
    """Each variable's source: ("value", v), ("config", resolved value) or ("secret", secret name, key)."""
    item = container(workload)
    assert not item.get("envFrom"), "envFrom would hand a process every key, including names it does not read"
    cm = config_map(rendering)
    sources: dict[str, tuple[str, ...]] = {}
    for var in item.get("env", []):
        name = var["name"]
        assert name not in sources, f"{name} is set twice"
        value_from = var.get("valueFrom")
        if value_from is None:
            sources[name] = ("value", str(var.get("value", "")))
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            assert not ref.get("optional"), f"{name}: an optional reference would start the process without it"
            assert ref["name"] == cm["metadata"]["name"], f"{name} refers to a ConfigMap that is not rendered"
            assert ref["key"] in cm["data"], f"{name}: credence-config has no key {ref['key']}"
            sources[name] = ("config", cm["data"][ref["key"]])
        elif "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"]
            assert not ref.get("optional"), f"{name}: an optional secret would start the process without it"
            sources[name] = ("secret", ref["name"], ref["key"])
        else:
            pytest.fail(f"{name}: unexpected source {value_from}")
    return sources


def plain_value(sources: dict, name: str) -> str:
    assert name in sources, f"{name} is not set"
    assert sources[name][0] in ("value", "config"), f"{name} should be a plain setting, not {sources[name][0]}"
    return sources[name][1]


def credential_env_names(spec: ProcessSpec) -> set[str]:
    names = secret_env_names(spec) | CREDENTIAL_NAMES
    return names | {spec.db_env} if spec.db_env else names


def shutdown_grace_seconds(spec: ProcessSpec) -> int:
    match = SHUTDOWN_GRACE.search(config_text(spec))
    assert match, f"{spec.config} no longer reads SHUTDOWN_GRACE_SECONDS as expected"
    return int(match.group(1))


def service_name(spec: ProcessSpec) -> str:
    """The nameko service name the process runs, which names its RPC queue."""
    module, _, cls = spec.service_class.partition(":")
    return getattr(importlib.import_module(module), cls).name


def serving_port(spec: ProcessSpec) -> int:
    return GATEWAY_PORT if spec is GATEWAY else spec.default_metrics_port


def port_number(item: dict, port) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in item.get("ports", []) if p.get("name") == port]
    assert len(numbers) == 1, f"no container port named {port!r}"
    return numbers[0]


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are used here"
    return selector["matchLabels"].items() <= labels.items()


def quantity(value) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.fixture(params=RENDERINGS)
def rendering(request) -> str:
    return request.param


# --- what is rendered ----------------------------------------------------------------------------

def test_renders_the_expected_kinds_and_no_secret(rendering):
    kinds = {doc["kind"] for doc in render(rendering)}
    assert kinds == EXPECTED_KINDS
    # Secrets are created in the cluster from git-ignored files (README.md "Secrets"), never rendered.
    assert "Secret" not in kinds


@pytest.mark.parametrize("kind", PER_PROCESS_KINDS)
def test_every_process_has_exactly_one_of_each_kind(rendering, kind):
    expected = {spec.name for spec in PROCESSES}
    if kind == "PodDisruptionBudget":
        expected.add(RABBITMQ)
    assert set(objects(rendering, kind)) == expected


def test_namespace(rendering):
    wanted = NAMESPACES[rendering]
    for doc in render(rendering):
        assert doc["metadata"].get("namespace") == wanted, f"{doc['kind']}/{doc['metadata']['name']}"


# --- Kubernetes' schemas -------------------------------------------------------------------------

def validate(doc: dict) -> str:
    try:
        return kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as missing:
        pytest.fail(missing.message)
    except kubernetes_validate.ValidationError as invalid:
        location = "/".join(str(part) for part in invalid.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {location}: {invalid.message}")


def test_builtin_objects_match_the_kubernetes_schemas(rendering):
    checked = 0
    for doc in render(rendering):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        assert validate(doc) == KUBERNETES_VERSION, "the bundled schemas lack this Kubernetes version"
        checked += 1
    assert checked >= len(PROCESSES) * len(PER_PROCESS_KINDS) + 3  # + the ConfigMap, the Job, RabbitMQ's PDB


@pytest.mark.parametrize("breakage", ["unknown field", "wrong type", "missing required field"])
def test_schema_validation_catches_mistakes(breakage):
    """Guards the validation above: it must reject a broken Deployment with the bundled schemas alone."""
    broken = copy.deepcopy(deployment("base", GATEWAY))
    item = broken["spec"]["template"]["spec"]["containers"][0]
    if breakage == "unknown field":
        item["livenessprobe"] = item["livenessProbe"]
    elif breakage == "wrong type":
        item["ports"][0]["containerPort"] = "eight thousand"
    else:
        del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- the RabbitMQ cluster (a custom resource) ----------------------------------------------------

QUANTITY = {"anyOf": [{"type": "string", "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"}, {"type": "integer"}]}
# The spec of rabbitmq.com/v1beta1 RabbitmqCluster, from the operator's api/v1beta1/rabbitmqcluster_types.go:
# its fields (nothing else is accepted), their types and the kubebuilder limits. resources and affinity are core
# types, checked against the Pod schema below; override is the operator's partial StatefulSet, checked for the
# one part used here.
RABBITMQ_CLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "rabbitmq.com/v1beta1"},
        "kind": {"const": "RabbitmqCluster"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "image": {"type": "string"},
                "imagePullSecrets": {"type": "array"},
                "service": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"type": {"enum": ["ClusterIP", "LoadBalancer", "NodePort"]},
                                   "annotations": {"type": "object"}},
                },
                "persistence": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"storageClassName": {"type": "string"}, "storage": QUANTITY},
                },
                "resources": {"type": "object"},
                "affinity": {"type": "object"},
                "tolerations": {"type": "array"},
                "rabbitmq": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "additionalPlugins": {"type": "array", "maxItems": 100,
                                              "items": {"type": "string", "pattern": PLUGIN.pattern,
                                                        "maxLength": 100}},
                        "additionalConfig": {"type": "string", "maxLength": 2000},
                        "advancedConfig": {"type": "string", "maxLength": 100000},
                        "envConfig": {"type": "string", "maxLength": 100000},
                    },
                },
                "tls": {"type": "object"},
                "override": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"statefulSet": {"type": "object"}, "service": {"type": "object"}},
                },
                "skipPostDeploySteps": {"type": "boolean"},
                "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
                "secretBackend": {"type": "object"},
            },
        },
    },
}


def rabbitmq_cluster(rendering: str) -> dict:
    clusters = objects(rendering, "RabbitmqCluster")
    assert list(clusters) == [RABBITMQ]
    return clusters[RABBITMQ]


def rabbitmq_config(cluster: dict) -> dict[str, str]:
    lines = cluster["spec"]["rabbitmq"].get("additionalConfig", "").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), "rabbitmq.conf lines are key = value"
    return {key.strip(): value.strip() for key, value in pairs}


def test_rabbitmq_cluster_structure(rendering):
    cluster = rabbitmq_cluster(rendering)
    jsonschema.validate(cluster, RABBITMQ_CLUSTER_SCHEMA)
    spec = cluster["spec"]
    # the core-type parts, against Kubernetes' own schema
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rabbitmq-parts"},
              "spec": {"containers": [{"name": "rabbitmq", "image": spec["image"], "resources": spec["resources"]}],
                       "affinity": spec.get("affinity", {})}})
    template = spec["override"]["statefulSet"]["spec"]["template"]
    assert set(spec["override"]["statefulSet"]["spec"]) == {"template"}
    assert set(template) == {"metadata"} and set(template["metadata"]) <= {"labels", "annotations"}


def test_rabbitmq_cluster_is_three_nodes_of_the_tested_version_without_per_object_metrics(rendering):
    spec = rabbitmq_cluster(rendering)["spec"]
    assert spec["replicas"] == 3, "quorum queues need a majority: three nodes survive the loss of one"
    assert spec["image"] == "rabbitmq:3.10-management", "the version docker-compose.yml and the tests use"
    assert quantity(spec["persistence"]["storage"]) >= 2**30
    resources = spec["resources"]
    assert quantity(resources["requests"]["memory"]) == quantity(resources["limits"]["memory"])
    assert "rabbitmq_prometheus" in spec["rabbitmq"]["additionalPlugins"]
    # The per-queue series come from /metrics/detailed (the rabbitmq-queues job), as in compose; per-object
    # metrics would make every family of /metrics per object, every connection and channel too.
    assert "prometheus.return_per_object_metrics" not in rabbitmq_config(rabbitmq_cluster(rendering))
    annotations = spec["override"]["statefulSet"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(RABBITMQ_METRICS_PORT)
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics", "the aggregated broker health"


def test_rabbitmq_disruption_budget_keeps_a_majority(rendering):
    budget = objects(rendering, "PodDisruptionBudget")[RABBITMQ]["spec"]
    assert budget.get("maxUnavailable") == 1
    # the operator labels the cluster's pods app.kubernetes.io/name=<cluster name>
    assert budget["selector"] == {"matchLabels": {"app.kubernetes.io/name": RABBITMQ}}


# --- processes against the process table ---------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_command_is_the_process_table_command(rendering, spec):
    item = container(deployment(rendering, spec))
    assert item["command"] == spec.command(python="python")
    assert "args" not in item
    assert (REPO_ROOT / spec.config).is_file()


def test_every_container_runs_the_one_pinned_credence_image(rendering):
    workloads = list(objects(rendering, "Deployment").values()) + list(objects(rendering, "Job").values())
    images = {container(workload)["image"] for workload in workloads}
    assert len(images) == 1, f"processes and the migration would run different code: {sorted(images)}"
    (image,) = images
    repository, _, tag = image.rpartition(":")
    assert repository.rsplit("/", 1)[-1] == "credence"
    assert tag and tag != "latest" and "/" not in tag, f"{image}: pin a release tag (kustomize images:)"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_deployment_leaves_the_replica_count_to_its_autoscaler(rendering, spec):
    assert "replicas" not in deployment(rendering, spec)["spec"]


# --- environment ---------------------------------------------------------------------------------

def test_direct_names_are_read_by_credence_common():
    source = "\n".join(path.read_text(encoding="utf-8") for path in (REPO_ROOT / "credence_common").rglob("*.py"))
    for name in READ_DIRECTLY:
        assert re.search(rf"environ\.get\(\s*[\"']{name}[\"']", source), f"credence_common no longer reads {name}"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_sets_only_names_the_process_reads(rendering, spec):
    read = env_names_read(spec)
    assert "AMQP_URI" in read, f"could not find the ${{NAME:...}} references in {spec.config}"
    unknown = set(env_sources(rendering, deployment(rendering, spec))) - read - set(READ_DIRECTLY)
    assert not unknown, f"{spec.name}: {sorted(unknown)} are not read by {spec.config} (misspelt?)"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_no_service_links_inject_variables(rendering, spec):
    # Kubernetes would otherwise add <SERVICE>_PORT, <SERVICE>_SERVICE_HOST... for every Service in the namespace
    assert pod_spec(deployment(rendering, spec)).get("enableServiceLinks") is False


def test_the_secret_scan_finds_the_secrets():
    """Guards the scan itself: if the regex stopped matching, the test below would pass vacuously."""
    found = set().union(*(secret_env_names(spec) for spec in PROCESSES))
    assert {"JWT_SECRET", "BOOTSTRAP_STAFF_PASSWORD", "PAYMENT_SANDBOX_SIGNING_KEY", "IDENTITY_DATA_KEYS",
            "CERTIFICATES_DATA_KEYS", "SCORING_DATA_KEYS", "PAYMENTS_DATA_KEYS"} <= found


def configured_adapters(sources: dict) -> dict[str, str]:
    """The adapter settings a container is given (credence_common.config reads the default for the others)."""
    return {setting: plain_value(sources, setting) for setting in ADAPTER_DEFAULTS if setting in sources}


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_every_credential_comes_from_the_process_secret(rendering, spec):
    sources = env_sources(rendering, deployment(rendering, spec))
    adapters = configured_adapters(sources)
    for name in sorted(credential_env_names(spec)):
        if not adapter_reads(adapters, name):  # another adapter's secret (ADAPTER_SECRETS): not handed over
            assert name not in sources, f"{spec.name}: {name} is given to a process whose adapters do not read it"
            continue
        assert name in sources, f"{spec.name}: {spec.config} reads {name}, which is not set (the dev default)"
        assert sources[name] == ("secret", f"credence-{spec.name}", name), \
            f"{spec.name}: {name} must come from key {name} of Secret credence-{spec.name}, not {sources[name]}"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_process_sees_only_its_own_database(rendering, spec):
    sources = env_sources(rendering, deployment(rendering, spec))
    databases = sorted(name for name in sources if name.endswith("_DB_URI"))
    assert databases == ([spec.db_env] if spec.db_env else [])
    keys = sorted(source[2] for source in sources.values() if source[0] == "secret" and source[2].endswith("_DB_URI"))
    assert keys == databases


def test_config_map_holds_no_credential(rendering):
    for key, value in config_map(rendering)["data"].items():
        assert not key.endswith(SECRET_SUFFIXES) and not key.endswith("_DB_URI") and key not in CREDENTIAL_NAMES, key
        assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{key} holds a URI with a password"


def test_config_map_settings(rendering):
    data = config_map(rendering)["data"]
    assert data["EVENT_QUEUE_TYPE"] == "quorum"
    assert data["LOG_FORMAT"] == "json"
    assert data["CREDENCE_ENV"] in ENVIRONMENTS and data["CREDENCE_ENV"] != "development"
    # identity refuses the dev SMS adapter outside development; production texts through Tencent Cloud SMS
    assert data["SMS_ADAPTER"] == ("tencent_sms" if rendering == "overlays/production" else "webhook")
    if rendering != "base":
        assert re.match(r"^https://[a-z0-9.-]+$", data["PUBLIC_BASE_URL"]) and ".invalid" not in data["PUBLIC_BASE_URL"]


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_credence_env(rendering, spec):
    """Production runs every process as production: no process is kept on staging rules to get a sandbox."""
    value = plain_value(env_sources(rendering, deployment(rendering, spec)), "CREDENCE_ENV")
    assert value == ("production" if rendering == "overlays/production" else "staging")


def test_the_production_overlay_has_no_staging_override():
    assert not (K8S_DIR / "overlays" / "production" / "sandboxes-stay-on-staging.yaml").exists()
    assert "staging" not in json.dumps(render("overlays/production")).replace("credence-staging", "")


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_production_configures_no_sandbox_adapter(spec):
    """No process of the production overlay names a sandbox or development adapter (the adapters' own defaults
    are sandboxes: the next test shows what production does with them)."""
    sources = env_sources("overlays/production", deployment("overlays/production", spec))
    for setting in ADAPTER_DEFAULTS:
        if setting in sources:
            value = plain_value(sources, setting)
            assert adapter_refusal(setting, value, {"CREDENCE_ENV": "production"}) is None, f"{setting}={value}"


# a Secret value whose shape a start-up check reads (a broker URI names its user: guest is refused)
SECRET_EXAMPLES = {"AMQP_URI": "pyamqp://credence-{process}:vault-Zq8@rabbitmq:5672/"}


def production_environment(spec: ProcessSpec, monkeypatch) -> None:
    """The environment the production overlay gives ``spec``'s container; each Secret key holds a real-looking
    value, as an operator's Secret would (so only what the overlay configures can make the process refuse)."""
    for name in env_names_read(spec) | set(READ_DIRECTLY):
        monkeypatch.delenv(name, raising=False)
    for name, source in env_sources("overlays/production", deployment("overlays/production", spec)).items():
        monkeypatch.setenv(name, source[1] if source[0] != "secret" else SECRET_EXAMPLES.get(
            name, f"k1=vault-{name.lower()}-Zq8").format(process=spec.name))


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_production_overlay_processes_pass_the_runners_start_up_check(spec, monkeypatch):
    """The check credence_common.runtime.runner runs at start-up, on each process configured as the production overlay
    configures it: every process starts (identity and payments with their real adapters; they used to refuse while
    their only adapters were sandboxes). That they then run and reach only the real providers:
    tests/security/test_production_overlay.py."""
    production_environment(spec, monkeypatch)
    config = load_config(REPO_ROOT / spec.config)
    assert assert_safe_for_environment(spec.name, config) is None


def test_identity_refuses_to_start_until_the_overlays_placeholders_are_filled_in(monkeypatch):
    """The operator's own accounts (the SMS application and its templates, the FaceID RuleId) are REPLACE_WITH_...
    placeholders in the production overlay: identity's SMS and FaceID adapters refuse them at start-up, naming the
    setting, rather than failing at the first text."""
    from services.identity.adapters import faceid, tencent_sms

    spec = next(spec for spec in PROCESSES if spec.name == "identity")
    production_environment(spec, monkeypatch)
    config = load_config(REPO_ROOT / spec.config)
    assert "REPLACE_WITH" in config["SMS_TENCENT_TEMPLATES"] and "REPLACE_WITH" in config["FACEID_RULE_ID"]
    with pytest.raises(ValueError, match="SMS_TENCENT_TEMPLATES|TemplateId"):
        tencent_sms.from_config(config)
    with pytest.raises(ValueError, match="FACEID_RULE_ID"):
        faceid.from_config(config, production=True)


# --- ports, probes, Services ---------------------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_metrics_port_is_set_exposed_and_scraped(rendering, spec):
    workload = deployment(rendering, spec)
    item = container(workload)
    port = int(plain_value(env_sources(rendering, workload), spec.metrics_port_env))
    assert port == spec.default_metrics_port
    assert {"name": "metrics", "containerPort": port} in item["ports"]
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"


def test_gateway_listens_on_all_interfaces_and_is_scraped_on_its_metrics_port(rendering):
    workload = deployment(rendering, GATEWAY)
    assert plain_value(env_sources(rendering, workload), "GATEWAY_ADDRESS") == f"0.0.0.0:{GATEWAY_PORT}"
    assert {"name": "http", "containerPort": GATEWAY_PORT} in container(workload)["ports"]
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    # the API port is public and does not serve /metrics
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(GATEWAY.default_metrics_port) != str(GATEWAY_PORT)


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_probes_hit_the_process_port(rendering, spec):
    item = container(deployment(rendering, spec))
    expected = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
    for probe, path in expected.items():
        if probe == "startupProbe" and probe not in item:
            continue
        get = item[probe]["httpGet"]
        assert get["path"] == path, f"{probe} should ask {path}"
        assert port_number(item, get["port"]) == serving_port(spec), f"{probe} asks the wrong port"
        assert get.get("scheme", "HTTP") == "HTTP"
    # /ready waits up to 2 s for each of the database and the broker
    assert item["readinessProbe"].get("timeoutSeconds", 1) >= 5


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_service_exposes_the_process_port_to_its_pods_only(rendering, spec):
    service = objects(rendering, "Service")[spec.name]["spec"]
    item = container(deployment(rendering, spec))
    (port,) = service["ports"]
    assert port["name"] == ("http" if spec is GATEWAY else "metrics")
    assert port["port"] == serving_port(spec)
    assert port_number(item, port["targetPort"]) == serving_port(spec)
    for other in PROCESSES:
        labels = deployment(rendering, other)["spec"]["template"]["metadata"]["labels"]
        assert selects({"matchLabels": service["selector"]}, labels) == (other is spec), other.name


# --- shutdown, security, resources ---------------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_termination_grace_covers_the_drain(rendering, spec):
    pod = pod_spec(deployment(rendering, spec))
    item = container(deployment(rendering, spec))
    env = env_sources(rendering, deployment(rendering, spec))
    drain = int(plain_value(env, "SHUTDOWN_GRACE_SECONDS")) if "SHUTDOWN_GRACE_SECONDS" in env \
        else shutdown_grace_seconds(spec)
    pre_stop = item.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 10


def image_user() -> tuple[int, int]:
    users = [line.split()[1] for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
             if line.strip().upper().startswith("USER ")]
    assert users, "deploy/Dockerfile has no USER"
    user, _, group = users[-1].partition(":")
    return int(user), int(group or user)


def workloads(rendering: str) -> list[dict]:
    return list(objects(rendering, "Deployment").values()) + list(objects(rendering, "Job").values())


def test_pods_run_unprivileged_on_a_read_only_root(rendering):
    uid, gid = image_user()
    for workload in workloads(rendering):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid), name
        assert pod.get("automountServiceAccountToken") is False, name
        item = container(workload)
        context = item["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add"), name
        assert not context.get("privileged"), name
        mounts = {mount["mountPath"]: mount["name"] for mount in item["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"


def test_containers_have_requests_and_limits(rendering):
    for workload in workloads(rendering):
        resources = container(workload)["resources"]
        for resource in ("cpu", "memory"):
            request, limit = resources["requests"][resource], resources["limits"][resource]
            assert 0 < quantity(request) <= quantity(limit), f"{workload['metadata']['name']} {resource}"


# --- autoscaling and disruption budgets ----------------------------------------------------------

@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_autoscaler_targets_the_deployment(rendering, spec):
    hpa = objects(rendering, "HorizontalPodAutoscaler")[spec.name]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name}
    minimum, maximum = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    assert 1 <= minimum <= maximum
    if rendering == "overlays/production":
        assert minimum >= 2, "with one replica a drain or a crash leaves the process's queue without a consumer"


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_autoscaler_metrics(rendering, spec):
    metrics = objects(rendering, "HorizontalPodAutoscaler")[spec.name]["spec"]["metrics"]
    cpu = [m for m in metrics if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["resource"]["target"]["type"] == "Utilization"
    assert 0 < cpu[0]["resource"]["target"]["averageUtilization"] <= 100
    external = [m["external"] for m in metrics if m["type"] == "External"]
    if spec is GATEWAY:
        assert external == [], "the gateway consumes no queue"
        return
    assert len(external) == 1
    assert external[0]["metric"]["name"] == QUEUE_METRIC
    queue = RPC_QUEUE_TEMPLATE.format(service_name(spec))
    assert external[0]["metric"]["selector"] == {"matchLabels": {"queue": queue}}
    assert external[0]["target"]["type"] == "AverageValue", "per replica, so more replicas lower it"
    assert quantity(external[0]["target"]["averageValue"]) > 0


@pytest.mark.parametrize("spec", PROCESSES, ids=ids)
def test_pod_selectors_match_only_the_process_pods(rendering, spec):
    workload = deployment(rendering, spec)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(workload["spec"]["selector"], labels)
    budget = objects(rendering, "PodDisruptionBudget")[spec.name]["spec"]
    assert budget.get("maxUnavailable") == 1 and "minAvailable" not in budget
    for other in PROCESSES:
        other_labels = deployment(rendering, other)["spec"]["template"]["metadata"]["labels"]
        assert selects(budget["selector"], other_labels) == (other is spec), other.name
        if other is not spec:
            assert not selects(workload["spec"]["selector"], other_labels), other.name


# --- the migration Job ---------------------------------------------------------------------------

# the settings migrations read besides the databases: the data keys of the services whose migrations encrypt
MIGRATION_KEYS = {"CREDENCE_ENV": "certificates", "CERTIFICATES_DATA_KEYS": "certificates",
                  "CERTIFICATES_DATA_ACTIVE_KEY_ID": "certificates", "SCORING_DATA_KEYS": "scoring",
                  "SCORING_DATA_ACTIVE_KEY_ID": "scoring", "PAYMENTS_DATA_KEYS": "payments",
                  "PAYMENTS_DATA_ACTIVE_KEY_ID": "payments"}


def test_migrate_job_migrates_every_service_database_from_the_service_secrets(rendering):
    jobs = objects(rendering, "Job")
    assert list(jobs) == [MIGRATE_JOB]
    job = jobs[MIGRATE_JOB]
    item = container(job)
    assert item["command"] == MIGRATE_COMMAND and "args" not in item
    assert pod_spec(job)["restartPolicy"] == "Never"
    sources = env_sources(rendering, job)
    assert sorted(sources) == sorted([f"{name.upper()}_DB_URI" for name in MIGRATED_SERVICES]
                                     + list(MIGRATION_KEYS))
    for name, service in MIGRATION_KEYS.items():
        # migrations that encrypt existing rows do it with the service's own keys and environment
        assert sources[name] == env_sources(rendering, deployment(rendering, next(
            spec for spec in SERVICE_PROCESSES if spec.name == service)))[name], name
    assert sorted(MIGRATED_SERVICES) == sorted(spec.name for spec in SERVICE_PROCESSES)
    for spec in SERVICE_PROCESSES:
        # the very reference the service uses: the Job migrates the database the service will open
        assert sources[spec.db_env] == env_sources(rendering, deployment(rendering, spec))[spec.db_env]
        assert sources[spec.db_env][0] == "secret"


def test_deploy_steps_select_by_component(rendering):
    """README.md applies the broker, then the migration Job, then the rest, by app.kubernetes.io/component."""
    def component(value: str) -> set[tuple[str, str]]:
        return {(doc["kind"], doc["metadata"]["name"]) for doc in render(rendering)
                if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == value}

    assert component("migration") == {("Job", MIGRATE_JOB)}
    assert component("broker") == {("RabbitmqCluster", RABBITMQ), ("PodDisruptionBudget", RABBITMQ)}


# --- secrets, documented but not committed -------------------------------------------------------

def example_secrets() -> dict[str, set[str]]:
    found = {}
    for path in sorted(SECRETS_EXAMPLE_DIR.glob("*.env")):
        keys = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, separator, value = line.partition("=")
                assert separator and key == key.strip() and re.fullmatch(r"[A-Z0-9_]+", key), f"{path.name}: {line}"
                assert "dev-insecure-" not in value, f"{path.name}: {key} holds a development default"
                keys.add(key)
        found[path.stem] = keys
    return found


def referenced_secret_keys(rendering: str) -> dict[str, set[str]]:
    referenced: dict[str, set[str]] = {}
    for workload in workloads(rendering):
        for source in env_sources(rendering, workload).values():
            if source[0] == "secret":
                referenced.setdefault(source[1], set()).add(source[2])
    return referenced


def test_example_secrets_document_every_referenced_key(rendering):
    examples = example_secrets()
    for secret, keys in referenced_secret_keys(rendering).items():
        assert keys <= examples.get(secret, set()), f"{rendering}: {secret} misses {sorted(keys - examples[secret])}"


def test_example_secrets_hold_only_keys_an_overlay_references():
    """Staging and production differ in their adapters (production's are the real providers), so the examples
    are the union: each key's comment says which environment needs it."""
    union: dict[str, set[str]] = {}
    for rendering in RENDERINGS:
        for secret, keys in referenced_secret_keys(rendering).items():
            union.setdefault(secret, set()).update(keys)
    assert union == example_secrets()


def test_real_secret_files_are_ignored_by_git():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.fail("git and the repository's .git are needed to check deploy/k8s/.gitignore")
    for secret in example_secrets():
        path = f"deploy/k8s/secrets/production/{secret}.env"
        result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO_ROOT)
        assert result.returncode == 0, f"{path} would not be ignored by git"


# --- the queue metric the autoscalers use ----------------------------------------------------------

def test_prometheus_adapter_serves_the_queue_metric_for_every_rpc_queue():
    rules = yaml.safe_load(ADAPTER_RULES.read_text(encoding="utf-8"))["rules"]["external"]
    serving = [rule for rule in rules if rule["name"]["as"] == QUEUE_METRIC]
    assert len(serving) == 1
    rule = serving[0]
    series = re.fullmatch(r"(\w+)\{(.*)\}", rule["seriesQuery"])
    # rabbitmq_prometheus' per-queue gauge on /metrics/detailed, read by the rabbitmq-queues job
    assert series and series.group(1) == "rabbitmq_detailed_queue_messages_ready"
    assert re.fullmatch(rule["name"]["matches"].strip("^$"), series.group(1))
    queue_regex = re.search(r'queue=~"([^"]+)"', series.group(2))
    assert queue_regex, "the rule should select queues by name"
    for spec in SERVICE_PROCESSES:
        assert re.fullmatch(queue_regex.group(1), RPC_QUEUE_TEMPLATE.format(service_name(spec))), spec.name
    # the HPA's selector (queue=...) and namespace reach the query, which answers per queue
    assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "by (queue)" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}


# --- Prometheus: the per-queue scrape job, shared with compose's monitoring -----------------------

# What RabbitMQ's /metrics/detailed returns for each family (rabbitmq_prometheus, RabbitMQ 3.10+): per queue,
# labelled vhost and queue. A series outside the families the job asks for would silently match nothing.
DETAILED_FAMILIES = {
    "queue_coarse_metrics": {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked",
                             "rabbitmq_detailed_queue_messages", "rabbitmq_detailed_queue_process_reductions_total"},
    "queue_consumer_count": {"rabbitmq_detailed_queue_consumers"},
}
DETAILED_SERIES = re.compile(r"\brabbitmq_detailed_[a-z0-9_]+\b")
UP_OF_JOB = re.compile(r'\bup\{job="([^"]+)"\}')
# Prometheus' Kubernetes service discovery (discovery/kubernetes): the fields of one kubernetes_sd_configs entry
# used here, its roles, and the selector roles each role accepts.
KUBERNETES_SD_FIELDS = {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
KUBERNETES_SD_SELECTOR_ROLES = {"pod": {"pod"}, "endpoints": {"pod", "service", "endpoints"},
                                "endpointslice": {"pod", "service", "endpointslice"}}
# Debian's build of Prometheus leaves Kubernetes service discovery out (its client library is not packaged), so
# its promtool rejects the field itself; an upstream promtool checks it.
NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"


def scrape_configs() -> list[dict]:
    jobs = yaml.safe_load(SCRAPE_CONFIGS.read_text(encoding="utf-8"))
    assert isinstance(jobs, list) and all(isinstance(job, dict) for job in jobs), \
        "a list of scrape_configs entries (additionalScrapeConfigs, or pasted under scrape_configs:)"
    return jobs


def scrape_job(jobs: list[dict], name: str, where: str) -> dict:
    found = [job for job in jobs if job.get("job_name") == name]
    assert len(found) == 1, f"{where} has {len(found)} scrape jobs named {name}"
    return found[0]


def shared_alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load(SHARED_ALERTS.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}


def shared_dashboard_expressions() -> list[str]:
    dashboard = json.loads(SHARED_DASHBOARD.read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return queries + [variable["definition"] for variable in dashboard["templating"]["list"]
                      if variable.get("type") == "query"]


def requested_series(job: dict) -> set[str]:
    families = job["params"]["family"]
    unknown = set(families) - set(DETAILED_FAMILIES)
    assert not unknown, f"families this test does not know: {sorted(unknown)}"
    return set().union(*(DETAILED_FAMILIES[family] for family in families))


def relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' relabelling for the actions used here (replace, keep, drop): the target's labels, or None."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        assert action in ("replace", "keep", "drop"), f"this test does not simulate action {action}"
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if (action == "keep" and not match) or (action == "drop" and match):
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$\{?(\d+)\}?", lambda group, found=match: found.group(int(group.group(1))) or "",
                                 rule.get("replacement", "$1"))
            labels[rule["target_label"]] = replacement
    labels.setdefault("instance", labels["__address__"])
    return {name: value for name, value in labels.items() if not name.startswith("__")}


def discovered_rabbitmq_pod(namespace: str, name: str) -> list[dict[str, str]]:
    """The targets Prometheus' pod role discovers for one node of the cluster: one per declared container port
    (the ports the RabbitMQ cluster operator declares) and one port-free target for its init container."""
    common = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": name,
              "__meta_kubernetes_pod_label_app_kubernetes_io_name": RABBITMQ,
              "__meta_kubernetes_pod_label_app_kubernetes_io_component": "rabbitmq"}
    targets = [{**common, "__address__": "10.0.0.7", "__meta_kubernetes_pod_container_name": "setup-container",
                "__meta_kubernetes_pod_container_init": "true"}]
    for port_name, port in (("epmd", 4369), ("amqp", 5672), ("management", 15672),
                            ("prometheus", RABBITMQ_METRICS_PORT)):
        targets.append({**common, "__address__": f"10.0.0.7:{port}", "__meta_kubernetes_pod_container_name": "rabbitmq",
                        "__meta_kubernetes_pod_container_init": "false",
                        "__meta_kubernetes_pod_container_port_name": port_name,
                        "__meta_kubernetes_pod_container_port_number": str(port),
                        "__meta_kubernetes_pod_container_port_protocol": "TCP"})
    return targets


def test_queue_job_reads_what_compose_reads():
    """One set of alert rules and one dashboard serve both: the same endpoint, families and vhost as compose."""
    job = scrape_job(scrape_configs(), QUEUES_JOB, "deploy/k8s/prometheus/scrape-configs.yaml")
    assert job["metrics_path"] == "/metrics/detailed"
    assert job["params"]["vhost"] == ["/"]
    assert sorted(job["params"]["family"]) == ["queue_coarse_metrics", "queue_consumer_count"]
    assert set(job["params"]) == {"vhost", "family"}
    compose = scrape_job(yaml.safe_load(COMPOSE_PROMETHEUS.read_text(encoding="utf-8"))["scrape_configs"],
                         QUEUES_JOB, "deploy/observability/prometheus/prometheus.yml")
    assert (job["metrics_path"], job["params"]) == (compose["metrics_path"], compose["params"])
    # the job's name is what the alerts check (below): no rule may rename it
    assert all(rule.get("target_label") != "job" for rule in job.get("relabel_configs", []))


def test_queue_job_scrapes_every_rabbitmq_node_of_the_overlays_namespaces():
    job = scrape_job(scrape_configs(), QUEUES_JOB, "deploy/k8s/prometheus/scrape-configs.yaml")
    assert "static_configs" not in job
    (discovery,) = job["kubernetes_sd_configs"]
    assert set(discovery) <= KUBERNETES_SD_FIELDS, f"unknown fields {sorted(set(discovery) - KUBERNETES_SD_FIELDS)}"
    # Each node reports only the queues it hosts: every pod is a target of its own, never the Service.
    assert discovery["role"] == "pod"
    assert set(discovery["namespaces"]) == {"names"}
    assert sorted(discovery["namespaces"]["names"]) == sorted(ns for ns in NAMESPACES.values() if ns)
    for selector in discovery.get("selectors", []):
        assert set(selector) <= {"role", "label", "field"}
        assert selector["role"] in KUBERNETES_SD_SELECTOR_ROLES[discovery["role"]]
    labels = [selector["label"] for selector in discovery.get("selectors", []) if "label" in selector]
    # the label the operator puts on the cluster's pods, the one RabbitMQ's PodDisruptionBudget selects
    budget = objects("base", "PodDisruptionBudget")[RABBITMQ]["spec"]["selector"]["matchLabels"]
    assert labels == [",".join(f"{key}={value}" for key, value in budget.items())]

    for namespace in discovery["namespaces"]["names"]:
        pod = f"{RABBITMQ}-server-1"
        targets = [relabel(job["relabel_configs"], found) for found in discovered_rabbitmq_pod(namespace, pod)]
        kept = [target for target in targets if target is not None]
        # one target per node, on rabbitmq_prometheus' port, labelled with its namespace (prometheus-adapter
        # selects the HPA's broker by it) and its pod
        assert kept == [{"instance": f"10.0.0.7:{RABBITMQ_METRICS_PORT}", "namespace": namespace, "pod": pod}]


def test_scrape_configs_pass_promtool_check_config(promtool, tmp_path):
    """The file as kube-prometheus-stack or a prometheus.yml would take it, checked by Prometheus' own parser."""
    jobs = scrape_configs()

    def check(scrape: list[dict]) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s", "evaluation_interval": "15s",
                                                     "scrape_timeout": "10s"},
                                          "scrape_configs": scrape}, sort_keys=False), encoding="utf-8")
        done = subprocess.run([promtool, "check", "config", config.name], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        output = done.stdout + done.stderr
        if NO_KUBERNETES_SD not in output:
            assert done.returncode == 0 and "SUCCESS" in output, f"promtool check config failed:\n{output}"
        return output

    if NO_KUBERNETES_SD in check(jobs):
        # Debian's promtool: check everything but the discovery (test_queue_job_scrapes_every_rabbitmq_node_...
        # checks that) with a stand-in target where the pods would be.
        stand_in = [{**{key: value for key, value in job.items() if key != "kubernetes_sd_configs"},
                     "static_configs": [{"targets": [f"{RABBITMQ}-server-0:{RABBITMQ_METRICS_PORT}"]}]}
                    for job in jobs]
        assert NO_KUBERNETES_SD not in check(stand_in)


def test_promtool_check_config_catches_a_broken_scrape_job(promtool, tmp_path):
    """Guards the check above: with the discovery left out, promtool still rejects a broken relabelling."""
    job = scrape_job(scrape_configs(), QUEUES_JOB, "deploy/k8s/prometheus/scrape-configs.yaml")
    broken = {**{key: value for key, value in job.items() if key != "kubernetes_sd_configs"},
              "relabel_configs": [{**job["relabel_configs"][0], "action": "kepp"}]}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [broken]}), encoding="utf-8")
    done = subprocess.run([promtool, "check", "config", config.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "kepp" in done.stdout + done.stderr


def test_adapter_reads_a_series_of_the_shared_alerts_and_dashboard_family():
    rules = yaml.safe_load(ADAPTER_RULES.read_text(encoding="utf-8"))["rules"]["external"]
    (rule,) = [rule for rule in rules if rule["name"]["as"] == QUEUE_METRIC]
    series = re.match(r"\w+", rule["seriesQuery"]).group(0)
    assert series.startswith("rabbitmq_detailed_queue_"), "the family compose's alerts and dashboard read"
    job = scrape_job(scrape_configs(), QUEUES_JOB, "deploy/k8s/prometheus/scrape-configs.yaml")
    assert series in requested_series(job), f"{series} is not among the families {QUEUES_JOB} asks for"
    # and the shared alerts and dashboard read only series that job brings, and read some
    shared = set()
    for expression in [*shared_alert_expressions().values(), *shared_dashboard_expressions()]:
        shared |= set(DETAILED_SERIES.findall(expression))
    assert shared, "the shared alerts and dashboard no longer read rabbitmq_detailed_* series: update this test"
    assert shared <= requested_series(job), f"not scraped on Kubernetes: {sorted(shared - requested_series(job))}"


def test_queue_job_is_the_one_the_shared_alerts_check():
    """An alert on the per-queue series holds itself back unless up{job="..."} of their job is 1: a job of
    another name would silence it rather than fail."""
    checked = {}
    for alert, expression in shared_alert_expressions().items():
        if DETAILED_SERIES.search(expression):
            checked[alert] = set(UP_OF_JOB.findall(expression))
    assert checked, "no shared alert reads the per-queue series any more: update this test"
    jobs = {job["job_name"] for job in scrape_configs()}
    for alert, names in checked.items():
        assert names, f"{alert} no longer checks up{{job=...}}: update this test"
        assert names <= jobs, f"{alert} checks up of {sorted(names)}; scrape-configs.yaml has {sorted(jobs)}"
    assert {QUEUES_JOB} == set().union(*checked.values())


# --- one broker user per process (deploy/broker_users.py) ---------------------------------------------------

def test_the_broker_users_are_the_ones_the_code_generates(rendering):
    from deploy import broker_users

    expected = {(r["kind"], r["metadata"]["name"]): r["spec"] for r in broker_users.k8s_resources()}
    rendered = {(doc["kind"], doc["metadata"]["name"]): doc["spec"] for doc in render(rendering)
                if doc["kind"] in ("User", "Permission", "TopicPermission")}
    assert rendered == expected, "stale: python -m deploy.broker_users k8s > deploy/k8s/base/rabbitmq-users.yaml"
    assert (K8S_DIR / "base" / "rabbitmq-users.yaml").read_text(encoding="utf-8") == broker_users.render_k8s()


def test_each_process_connects_as_its_own_broker_user():
    from deploy import broker_users

    for principal in broker_users.PRINCIPALS:
        example = (K8S_DIR / "secrets.example" / f"credence-{principal}.env").read_text(encoding="utf-8")
        assert f"AMQP_URI=pyamqp://{broker_users.user_name(principal)}:" in example


# --- make kubectl: installed as make test installs its other tools, or named -----------------------------------

def _make_kubectl(tmp_path, kubectl_body: str) -> tuple[subprocess.CompletedProcess, str]:
    """`make kubectl` with a stand-in kubectl and a stand-in for sudo that logs what it was asked (apt-get) and
    installs nothing, unless the stand-in kubectl is made new by it (``installs`` in the log)."""
    kubectl, sudo, log = tmp_path / "kubectl", tmp_path / "sudo", tmp_path / "sudo.log"
    kubectl.write_text("#!/usr/bin/env bash\n" + kubectl_body + "\n")
    sudo.write_text(f"#!/usr/bin/env bash\necho \"$*\" >> {log}\n"
                    f"[ -e {tmp_path / 'apt-offers-kubectl'} ] && [ \"$*\" = 'apt-get install -y -q kubectl' ] && "
                    f"touch {tmp_path / 'installed'} && exit 0\nexit 100\n")
    kubectl.chmod(0o755)
    sudo.chmod(0o755)
    result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), "kubectl", f"KUBECTL={kubectl}",
                             f"SUDO={sudo}"], capture_output=True, text=True, timeout=60)
    return result, log.read_text() if log.exists() else ""


NEW_KUBECTL = 'echo "Client Version: v1.32.4"; echo "Kustomize Version: v5.5.0"'
OLD_KUBECTL = 'echo "Client Version: version.Info{Major:\\"1\\", Minor:\\"20\\", GitVersion:\\"v1.20.2\\"}"'


def test_make_kubectl_leaves_a_kubectl_with_kustomize_v5_alone(tmp_path):
    result, asked = _make_kubectl(tmp_path, NEW_KUBECTL)
    assert result.returncode == 0, result.stderr
    assert asked == "" and result.stdout == ""


def test_make_kubectl_installs_the_kubectl_package_when_kubectl_is_missing_or_too_old(tmp_path):
    (tmp_path / "apt-offers-kubectl").touch()
    result, asked = _make_kubectl(tmp_path, f'[ -e {tmp_path / "installed"} ] || exit 127\n{NEW_KUBECTL}')
    assert result.returncode == 0, result.stderr
    assert asked == "apt-get install -y -q kubectl\n"
    assert "Installing the kubectl package" in result.stdout


def test_make_kubectl_names_what_to_install_when_apt_cannot(tmp_path):
    """Debian bookworm's own kubernetes-client (1.20) is too old: the target fails, naming kubectl 1.27 or newer and
    where it comes from, instead of letting test_k8s.py fail later."""
    result, asked = _make_kubectl(tmp_path, OLD_KUBECTL)
    assert result.returncode != 0
    assert asked.splitlines() == ["apt-get install -y -q kubectl", "apt-get update -q"]
    assert "kubectl 1.27 or newer is needed" in result.stderr and "https://pkgs.k8s.io" in result.stderr
