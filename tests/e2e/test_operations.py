"""The operator's side of the running platform: the ``credence`` CLI against real processes, and one request
followed through the logs by its correlation id."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import requests

from credence_common.calendar import business_day
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.events import CertificateIssuedV1, PaymentSucceededV1
from credence_common.observability.logs import read_json_log
from deploy.journey import wait_until
from deploy.processes import BY_NAME

# also against the nameko gateway (GATEWAY_SERVER=nameko), on SQLite (tests/e2e/conftest.py)
ALSO_ON_THE_NAMEKO_GATEWAY = True
def credence(platform, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(platform.env, COLUMNS="200", CREDENCE_OPERATOR="ops-e2e")
    return subprocess.run([sys.executable, "-m", "credence_cli.main", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def ok(outcome: subprocess.CompletedProcess) -> str:
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    return outcome.stdout


def test_commands_that_call_a_service_name_their_correlation_id(platform, journey):
    listed = credence(platform, "batches", "list", "--json")
    assert listed.returncode == 0 and "correlation id cli-" in listed.stderr
    json.loads(listed.stdout)


def staff_token(platform, username: str, password: str) -> requests.Response:
    return requests.post(platform.gateway_url + "/api/v1/auth/staff-token", timeout=15,
                         json={"username": username, "password": password})


def log_records(platform, name: str) -> list[dict]:
    return read_json_log((platform.log_dir / f"{name}.log").read_text(errors="replace"))


def test_the_console_script_is_installed():
    assert (Path(sys.executable).parent / "credence").is_file()


def test_status_shows_every_service_answering_with_nothing_stuck(platform, journey):
    report = wait_until("the platform is all well",
                        lambda: (lambda o: o if o.returncode == 0 else None)(credence(platform, "status")), 60)
    for service in ("identity", "scoring", "certificates", "payments", "verification"):
        assert service in report.stdout
    assert "all well" in report.stdout


def test_migrate_is_a_no_op_on_the_running_platform(platform, journey):
    assert "migrated: identity, scoring, certificates, payments, verification" in ok(credence(platform, "migrate"))
    assert credence(platform, "migrate", "nonsense").returncode == 2


def test_staff_create_makes_an_account_that_can_sign_in(platform, journey):
    username = f"ops{uuid.uuid4().hex[:8]}"
    password = "Tall-Ladder-Quiet-River-42"
    assert staff_token(platform, username, password).status_code == 401
    created = ok(credence(platform, "staff", "create", username, "--display-name", "Night shift",
                          "--password-stdin", stdin=password + "\n"))
    assert f"staff account {username}" in created
    assert staff_token(platform, username, password).status_code == 200
    again = credence(platform, "staff", "create", username, "--password-stdin", stdin=password + "\n")
    assert again.returncode == 1 and "username_taken" in again.stdout
    weak = credence(platform, "staff", "create", f"x{username}", "--password-stdin", stdin="password\n")
    assert weak.returncode == 1 and "refused" in weak.stdout
    assert "roles: none" in created  # no role unless given: it signs in and may do nothing yet


def test_staff_roles_are_given_with_the_account_and_changed_on_record(platform, journey):
    username = f"ops{uuid.uuid4().hex[:8]}"
    password = "Amber-Ledger-Calm-Field-17"
    created = ok(credence(platform, "staff", "create", username, "--role", "expert", "--role", "recorder",
                          "--password-stdin", stdin=password + "\n"))
    assert "roles: recorder, expert" in created
    unknown = credence(platform, "staff", "create", f"y{username}", "--role", "boss", "--password-stdin",
                       stdin=password + "\n")
    assert unknown.returncode == 2 and "unknown staff role" in unknown.stdout
    assert credence(platform, "staff", "roles", username, "--reason", "nothing named").returncode == 2
    changed = ok(credence(platform, "staff", "roles", username, "--role", "publisher", "--reason", "release desk"))
    assert "now holds: publisher" in changed
    listed = {a["username"]: a["roles"] for a in json.loads(ok(credence(platform, "staff", "list", "--json")))}
    assert listed[username] == ["publisher"] and "admin" in listed["admin"]
    signed_in = staff_token(platform, username, password).json()
    publish = requests.post(platform.gateway_url + "/api/v1/exam-results/publication", timeout=15,
                            json={"program_code": "ZK-LAW", "sitting": "1999-01"},
                            headers={"Authorization": f"Bearer {signed_in['access_token']}"})
    assert publish.status_code == 200, publish.text  # the role the CLI gave counts at the next sign-in
    changes = requests.get(platform.gateway_url + f"/api/v1/staff-accounts/{username}/role-changes", timeout=15,
                           headers={"Authorization": f"Bearer {journey['staff_token']}"}).json()["changes"]
    assert [(c["changed_by"], c["roles_after"], c["reason"]) for c in changes] == [
        ("cli:ops-e2e", ["recorder", "expert"], "account created"), ("cli:ops-e2e", ["publisher"], "release desk")]
    none = ok(credence(platform, "staff", "roles", username, "--none", "--reason", "moved to another office"))
    assert "now holds: none" in none


def test_results_import_streams_a_file_the_candidate_then_sees(platform, journey, tmp_path):
    sitting = time.strftime("%Y-%m")
    results = tmp_path / "centre.csv"
    results.write_text("ticket_number,program_code,course_code,sitting,score\n"
                       f"{journey['ticket_number']},ZK-LAW,00015,{sitting},77\n")
    imported = ok(credence(platform, "results", "import", str(results), "--actor", "centre-e2e"))
    assert "1 rows, 1 recorded" in imported
    broken = tmp_path / "broken.csv"
    broken.write_text("ticket_number,program_code,course_code,sitting,score\n"
                      f"{journey['ticket_number']},ZK-LAW,00015,{sitting},abc\n")
    refused = credence(platform, "results", "import", str(broken), "--actor", "centre-e2e")
    assert refused.returncode == 1 and "line 2" in refused.stdout
    nameless = credence(platform, "results", "import", str(results))
    assert nameless.returncode == 2  # the staff account importing is required (separation of duties)


def test_batches_list_and_close_through_the_running_service(platform, journey):
    assert "status" in ok(credence(platform, "batches", "list"))  # the table, for people
    listed = json.loads(ok(credence(platform, "batches", "list", "--json")))
    open_batches = [b["batch_id"] for b in listed if b["status"] == "open"]
    assert open_batches, listed  # the journey's certificate sits in an open batch
    closed = ok(credence(platform, "batches", "close", open_batches[0]))
    assert "closed with" in closed and "cli:ops-e2e" in closed
    batches = requests.get(platform.gateway_url + "/api/v1/production-batches", timeout=15,
                           headers={"Authorization": f"Bearer {journey['staff_token']}"}).json()["batches"]
    assert any(b["status"] == "closed" and b["closed_by"].endswith("cli:ops-e2e") for b in batches)
    again = credence(platform, "batches", "close", open_batches[0])
    assert again.returncode == 1 and "refused" in again.stdout
    unknown = credence(platform, "batches", "close", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "not_found" in unknown.stdout


def test_reconcile_finds_the_journeys_payment_matching(platform, journey):
    day = business_day(utcnow()).isoformat()
    report = credence(platform, "payments", "reconcile", day, "--json")
    assert report.returncode == 0, report.stdout + report.stderr
    body = json.loads(report.stdout)
    assert body["payments_matched"] >= 1 and body["mismatches"] == []


def test_outbox_shows_every_service_with_nothing_stale(platform, journey):
    table = ok(credence(platform, "outbox", "status"))
    for service in ("identity", "scoring", "certificates", "payments", "verification"):
        assert service in table


def test_outbox_republish_sends_events_again_and_consumers_ignore_what_they_had(platform, journey):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))
    assert credence(platform, "outbox", "republish", "certificates", "--since", since).returncode == 2  # no --yes
    again = ok(credence(platform, "outbox", "republish", "certificates", "--since", since,
                        "--type", CertificateIssuedV1.event_type, "--yes"))
    assert re.search(r"\b[1-9][0-9]* certificates event\(s\) queued", again), again
    wait_until("the relay published them again", lambda: json.loads(ok(credence(
        platform, "outbox", "status", "certificates", "--json")))["certificates"]["pending"] == 0, 30)
    duplicates = wait_until("verification recognised the duplicates", lambda: metric(
        platform, "verification", "credence_events_duplicate_total", CertificateIssuedV1.event_type), 30)
    assert duplicates >= 1
    check = requests.post(platform.gateway_url + "/api/v1/certificate-checks", timeout=15, json={
        "holder_name": journey["full_name"], "certificate_number": journey["certificate"]["certificate_number"]})
    assert check.json()["result"] == "valid"


def metric(platform, service: str, name: str, event_type: str) -> float:
    text = requests.get(f"http://127.0.0.1:{platform.metrics_port(BY_NAME[service])}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and f'event_type="{event_type}"' in line)


def test_a_dead_letter_shows_in_status_and_is_replayed_then_purged(platform, journey):
    parameters = pika.URLParameters(platform.env["AMQP_URI"].replace("pyamqp://", "amqp://", 1))
    connection = pika.BlockingConnection(parameters)
    try:
        connection.channel().basic_publish("payments.events", PaymentSucceededV1.event_type,
                                           json.dumps({"not": "an event"}),
                                           pika.BasicProperties(content_type="application/json", delivery_mode=2))
    finally:
        connection.close()

    def dead_letters() -> str:
        outcome = credence(platform, "dead-letters", "list", "certificates")
        return outcome.stdout if outcome.returncode == 0 and ": 1 message(s)" in outcome.stdout else ""

    wait_until("the malformed event is dead-lettered", dead_letters, 60)
    status = credence(platform, "status")
    assert status.returncode == 1 and "needs attention" in status.stdout
    assert "Replayed 1 message(s)" in ok(credence(platform, "dead-letters", "replay", "certificates", "--all"))
    # still malformed: it fails again and comes back to the dead letters, nothing else changes
    wait_until("the replayed event is dead-lettered again", dead_letters, 60)
    assert "Purged 1 message(s)" in ok(credence(platform, "dead-letters", "purge", "certificates", "--yes"))
    wait_until("the platform is all well again", lambda: credence(platform, "status").returncode == 0, 60)


def test_verification_rebuild_keeps_the_public_answer(platform, journey):
    rebuilt = ok(credence(platform, "verification", "rebuild"))
    assert "replayed" in rebuilt
    check = requests.post(platform.gateway_url + "/api/v1/certificate-checks", timeout=15, json={
        "holder_name": journey["full_name"], "certificate_number": journey["certificate"]["certificate_number"]})
    assert check.status_code == 200 and check.json()["result"] == "valid"


def test_queues_status_lists_the_event_queues(platform, journey):
    assert "evt-payments-" in ok(credence(platform, "queues", "status"))


def test_a_request_is_followed_across_services_by_its_correlation_id(platform, journey):
    correlation_id = f"e2e-{uuid.uuid4().hex}"
    refused = requests.post(platform.gateway_url + "/api/v1/auth/login", timeout=15,
                            headers={"X-Request-Id": correlation_id},
                            json={"login": journey["mobile"], "password": "not-the-password-1"})
    assert refused.status_code in (401, 429) and refused.headers["X-Request-Id"] == correlation_id
    minted = requests.get(platform.gateway_url + "/api/v1/programs", timeout=15)
    assert len(minted.headers["X-Request-Id"]) == 32  # none sent: the gateway makes one
    forged = requests.get(platform.gateway_url + "/api/v1/programs", timeout=15, headers={"X-Request-Id": "a b"})
    assert forged.headers["X-Request-Id"] != "a b"

    def lines_of(name: str) -> list[dict]:
        return [r for r in log_records(platform, name) if r.get("correlation_id") == correlation_id]

    gateway_lines = wait_until("the gateway logged the request", lambda: lines_of("gateway"), 15)
    assert any("/api/v1/auth/login" in line["message"] for line in gateway_lines)
    identity_lines = wait_until("identity logged the refusal", lambda: lines_of("identity"), 15)
    assert all(line["service"] == "identity" and line["level"] for line in identity_lines)


def test_every_log_line_is_json(platform, journey):
    for log in platform.log_dir.glob("*.log"):
        records = read_json_log(log.read_text(errors="replace"))
        assert records, f"{log.name} is empty"
        not_json = [r for r in records if "level" not in r]
        assert not not_json, f"{log.name} has lines that are not JSON: {not_json[:3]}"


def test_events_carry_the_correlation_id_of_the_request_that_caused_them(platform, journey):
    """The payment's event carries its request's id; certificates issued the certificate while handling that
    event, so certificate.issued carries the same id (a new one would mean the chain was broken)."""

    def envelopes(service: str, event_type: str) -> list[dict]:
        from sqlalchemy import create_engine, text

        from credence_common.persistence.db import normalise_db_uri

        engine = create_engine(normalise_db_uri(platform.db_uri(service)))
        try:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT envelope_json FROM outbox WHERE event_type = :t"),
                                          {"t": event_type}).all()
        finally:
            engine.dispose()
        if service == "certificates":  # sealed at rest, with the keys the platform's environment gives
            from services.certificates.adapters.protection import keyring_from_environment

            return [json.loads(keyring_from_environment().decrypt(row[0])) for row in rows]
        return [json.loads(row[0]) for row in rows]

    paid = {e["correlationid"] for e in envelopes("payments", PaymentSucceededV1.event_type)}
    issued = {e["correlationid"] for e in envelopes("certificates", CertificateIssuedV1.event_type)}
    assert paid and issued and None not in paid | issued
    assert paid & issued
