"""Prometheus' configuration and alert rules, and the Grafana dashboard (deploy/observability), checked against
promtool and against the metrics the code defines.

promtool comes from Debian's ``prometheus`` package (``make test`` installs it: ``make promtool``). Without it
these tests fail rather than skip: a skipped check of the alerts would look like a passing one.
How the files are mounted into the containers is checked in test_compose.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import credence_common.bus.reliable_events  # noqa: F401  (registers credence_dead_letters)
import credence_common.observability.metrics  # noqa: F401  (registers the credence_* metrics)
import services.identity.adapters.degree_registry  # noqa: F401  (registers credence_degree_registry_lookups_total)
import services.identity.adapters.faceid  # noqa: F401  (registers credence_identity_verifier_*)
import services.identity.adapters.sms  # noqa: F401  (registers credence_sms_texts_total)
import services.identity.adapters.tencent_sms  # noqa: F401  (registers credence_sms_breaker_open)
import services.payments.adapters.metrics  # noqa: F401  (registers credence_payments_reconciliation_*)
from deploy.processes import SERVICE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO_ROOT / "deploy" / "observability"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "credence.json"
README = OBSERVABILITY / "README.md"

RUNBOOK = "docs/operations.md"
SEVERITIES = {"critical", "warning"}

# What RabbitMQ 3.10's /metrics/detailed returns for each family, read off a real node (rabbitmq_prometheus
# 3.10.8) with queues declared, messages waiting and a consumer attached: every series has the labels vhost and
# queue. A metric not listed here would silently match nothing.
DETAILED_FAMILIES = {
    "queue_coarse_metrics": {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked",
                             "rabbitmq_detailed_queue_messages", "rabbitmq_detailed_queue_process_reductions_total"},
    "queue_consumer_count": {"rabbitmq_detailed_queue_consumers"},
}
DETAILED_LABELS = {"vhost", "queue"}

# Grafana's variables, replaced by plausible values so that promtool can parse the dashboard's queries. $service
# is tried as one value and as the regex Grafana builds for several (or All).
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
SERVICE_VALUES = {"one": "identity", "several": "(identity|scoring)"}

# One panel per question the dashboard must answer: a word of its title, and what its query must contain.
REQUIRED_PANELS = {
    "request rate": ("request rate", ["rate(credence_entrypoint_calls_total"]),
    "errors": ("error", ['outcome="error"', "credence_entrypoint_calls_total"]),
    "p50 latency": ("p50", ["histogram_quantile(0.5,", "credence_entrypoint_duration_seconds_bucket"]),
    "p99 latency": ("p99", ["histogram_quantile(0.99,", "credence_entrypoint_duration_seconds_bucket"]),
    "queue depth": ("queue depth", ["rabbitmq_detailed_queue_messages"]),
    "outbox backlog": ("outbox backlog", ["credence_outbox_backlog"]),
    "dead letters": ("dead letters", ["credence_dead_letters"]),
}

CREDENCE_METRIC = re.compile(r"\bcredence_[a-z0-9_]+\b")
RABBITMQ_METRIC = re.compile(r"\brabbitmq_[a-z0-9_]+\b")
GRAFANA_VARIABLE = re.compile(r"\$(\w+)")
HEADING = re.compile(r"^#{2,4}\s+(.+?)\s*$", re.MULTILINE)


# --- helpers ---------------------------------------------------------------------------------------------


def run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return load_yaml(PROMETHEUS_CONFIG)


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    sources = load_yaml(DATASOURCES)["datasources"]
    prometheus = [source for source in sources if source["type"] == "prometheus"]
    assert len(prometheus) == 1, "provision exactly one Prometheus data source"
    return prometheus[0]["uid"]


def dashboard_targets(dashboard: dict) -> list[tuple[dict, dict]]:
    return [(panel, target) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = [target["expr"] for _panel, target in dashboard_targets(dashboard)]
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            queries.append(variable["definition"])
    return queries


def defined_credence_metrics() -> set[str]:
    """Every series name the code's credence_* metrics can produce (a counter's family name lacks _total)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("credence_"):
            names |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def anchor_of(alert: str) -> str:
    return f"alert-{alert.lower()}"


def scrape_job(config: dict, name: str) -> dict:
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == name]
    assert len(jobs) == 1, f"prometheus.yml has {len(jobs)} scrape jobs named {name}"
    return jobs[0]


# --- promtool --------------------------------------------------------------------------------------------

def test_prometheus_config_is_valid_and_finds_its_alert_rules(promtool, prometheus_config):
    output = run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG.name)
    assert prometheus_config["rule_files"] == [ALERTS.name]
    assert "SUCCESS: 1 rule files found" in output, output


def test_alert_rules_are_valid(promtool, alert_rules):
    output = run_promtool(promtool, "check", "rules", ALERTS.name)
    assert f"SUCCESS: {len(alert_rules)} rules found" in output, output


def test_alert_rule_unit_tests_pass(promtool):
    output = run_promtool(promtool, "test", "rules", ALERT_TESTS.name)
    assert "SUCCESS" in output, output


def test_every_dashboard_query_is_valid_promql(promtool, dashboard, tmp_path):
    rules = []
    for panel, target in dashboard_targets(dashboard):
        for variant, service in SERVICE_VALUES.items():
            values = dict(GRAFANA_VARIABLES, service=service)
            unknown = set(GRAFANA_VARIABLE.findall(target["expr"])) - set(values)
            assert not unknown, f"panel {panel['title']!r} uses unknown variables {sorted(unknown)}"
            expr = GRAFANA_VARIABLE.sub(lambda match, values=values: values[match.group(1)], target["expr"])
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}:{variant}", "expr": expr})
    assert rules
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    output = run_promtool(promtool, "check", "rules", str(rule_file), cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output, output


# --- the alert rules -------------------------------------------------------------------------------------

EXPECTED_ALERTS = {
    "CredenceEntrypointErrorRateHigh", "CredenceEntrypointLatencyHigh", "CredenceOutboxBacklogGrowing",
    "CredenceOutboxPublishFailing", "CredenceDeadLetters", "CredenceRpcQueueWithoutConsumers",
    "CredenceScrapeTargetDown", "CredencePaymentsReconciliationMismatch", "CredencePaymentsReconciliationStale",
    "CredenceSmsNotDelivered", "CredenceIdentityVendorUnavailable",
}


def test_the_alerts_are_the_expected_ones(alert_rules):
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "alert names must be unique (they name the runbook sections)"
    assert set(names) == EXPECTED_ALERTS


def test_every_alert_has_severity_summary_description_and_runbook(alert_rules):
    for rule in alert_rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity must be one of {SEVERITIES}"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name} has no summary"
        assert annotations.get("description", "").strip(), f"{name} has no description"
        assert annotations.get("runbook_url") == f"{RUNBOOK}#{anchor_of(name)}", f"{name}: runbook_url"


def test_every_alert_is_unit_tested_firing_and_quiet(alert_rules):
    fires, quiet = set(), set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules}
    assert names <= fires, f"no test shows {sorted(names - fires)} firing"
    assert names <= quiet, f"no test shows {sorted(names - quiet)} staying quiet"


def test_the_rpc_consumer_alert_covers_every_service(alert_rules, prometheus_config):
    rule = next(rule for rule in alert_rules if rule["alert"] == "CredenceRpcQueueWithoutConsumers")
    expr = rule["expr"]
    selector = re.search(r'queue=~"rpc-\(([^)]*)\)"', expr)
    assert selector and set(selector.group(1).split("|")) == set(SERVICE_NAMES)
    stand_ins = set(re.findall(r'label_replace\(vector\(0\), "queue", "rpc-([a-z]+)"', expr))
    assert stand_ins == set(SERVICE_NAMES), "a missing RPC queue must count as one without consumers"
    for job in re.findall(r'up\{job="([^"]+)"\}', expr):
        scrape_job(prometheus_config, job)


# --- metric names ----------------------------------------------------------------------------------------

def test_the_code_defines_every_credence_metric_used(alert_rules, dashboard):
    defined = defined_credence_metrics()
    assert "credence_entrypoint_calls_total" in defined and "credence_dead_letters" in defined
    used = {}
    for rule in alert_rules:
        for name in CREDENCE_METRIC.findall(rule["expr"]):
            used.setdefault(name, f"alert {rule['alert']}")
    for query in dashboard_queries(dashboard):
        for name in CREDENCE_METRIC.findall(query):
            used.setdefault(name, "the dashboard")
    unknown = {name: where for name, where in used.items() if name not in defined}
    assert not unknown, f"metrics the code does not define: {unknown}"
    assert {"credence_entrypoint_calls_total", "credence_entrypoint_duration_seconds_bucket",
            "credence_outbox_backlog", "credence_outbox_publish_failures_total", "credence_dead_letters"} <= set(used)


def test_rabbitmq_metrics_used_are_the_ones_its_detailed_endpoint_is_asked_for(alert_rules, dashboard,
                                                                              prometheus_config):
    job = scrape_job(prometheus_config, "rabbitmq-queues")
    assert job["metrics_path"] == "/metrics/detailed"
    requested = set(job["params"]["family"])
    assert requested <= set(DETAILED_FAMILIES), f"unknown families {requested - set(DETAILED_FAMILIES)}"
    available = set().union(*(DETAILED_FAMILIES[family] for family in requested))
    exprs = [rule["expr"] for rule in alert_rules] + dashboard_queries(dashboard)
    used = {name for expr in exprs for name in RABBITMQ_METRIC.findall(expr)}
    assert used, "neither the alerts nor the dashboard use RabbitMQ's per-queue metrics"
    assert used <= available, f"not scraped: {sorted(used - available)}"
    for expr in exprs:
        for labels in re.findall(r"rabbitmq_detailed_\w+\{([^}]*)\}", expr):
            names = set(re.findall(r"(\w+)\s*[=!]~?", labels))
            assert names <= DETAILED_LABELS, f"labels RabbitMQ does not give: {names - DETAILED_LABELS}"


# --- the dashboard ---------------------------------------------------------------------------------------

def test_dashboard_is_a_grafana_dashboard(dashboard, datasource_uid):
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("uid") and dashboard.get("title")
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        where = f"panel {panel.get('id')} ({panel.get('title')!r})"
        assert panel.get("type") and panel.get("title"), where
        grid = panel.get("gridPos", {})
        assert all(isinstance(grid.get(key), int) for key in "hwxy"), f"{where}: gridPos"
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, f"{where}: gridPos"
        assert panel.get("datasource", {}).get("uid") == datasource_uid, f"{where}: datasource"
        assert panel.get("targets"), f"{where}: no targets"
        for target in panel["targets"]:
            assert target.get("refId") and target.get("expr", "").strip(), f"{where}: target"
            assert target.get("datasource", {}).get("uid", datasource_uid) == datasource_uid, f"{where}: target"


def test_dashboard_panels_do_not_overlap(dashboard):
    cells = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_selects_services(dashboard, datasource_uid):
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    service = variables.get("service")
    assert service, "the dashboard needs a service variable"
    assert service["multi"] and service["includeAll"]
    assert service["datasource"]["uid"] == datasource_uid
    for panel, target in dashboard_targets(dashboard):
        if CREDENCE_METRIC.search(target["expr"]) or "queue=~" in target["expr"]:
            assert "$service" in target["expr"], f"panel {panel['title']!r} ignores the service selection"


@pytest.mark.parametrize("topic", REQUIRED_PANELS)
def test_dashboard_has_a_panel_for(dashboard, topic):
    word, needles = REQUIRED_PANELS[topic]
    matching = [panel for panel in dashboard["panels"] if word in panel["title"].lower()
                and all(any(needle in target["expr"] for target in panel["targets"]) for needle in needles)]
    assert matching, f"no panel titled with {word!r} whose query has {needles}"


# --- the README ------------------------------------------------------------------------------------------

def test_readme_explains_every_alert_under_its_runbook_anchor(alert_rules):
    anchors = {github_anchor(heading) for heading in HEADING.findall(README.read_text(encoding="utf-8"))}
    missing = sorted(rule["alert"] for rule in alert_rules if anchor_of(rule["alert"]) not in anchors)
    assert not missing, f"README.md has no section 'Alert: <name>' for {missing}"


def test_readme_explains_every_panel(dashboard):
    text = README.read_text(encoding="utf-8")
    missing = [panel["title"] for panel in dashboard["panels"] if panel["title"] not in text]
    assert not missing, f"README.md does not describe the panels {missing}"
