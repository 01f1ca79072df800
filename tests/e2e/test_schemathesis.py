"""Hostile input: schemathesis generates requests for every operation in ``/openapi.json`` (examples, the
coverage phase's boundary values and random fuzzing) as an anonymous caller, as staff and as a candidate,
and no answer may be a 5xx. It runs as its own process (no eventlet), against a platform of its own.

Each run prints what it did (``schemathesis ...: N test cases``, each test case one API call; the stateful phase's
scenarios and the links it followed) and fails when it did less than a floor: a run that silently generated
nothing, or stopped following the document's links, is a failure, not a pass. The counts of a run are
deterministic (a fixed seed) but depend on the document; docs/reliability.md states the counts measured."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

# Test cases per operation in the fuzzing and stateful phases (--max-examples), as many as CI's time allows: the
# examples and coverage phases add their own, whatever the number (tests/e2e takes most of `make test`'s time)
NO_SERVER_ERROR_EXAMPLES = 10
AGREEMENT_EXAMPLES = 10
# the stateful phase: scenarios (its own max-examples) of up to so many linked calls each; at the defaults (as many
# scenarios as the fuzzing's --max-examples, 6 calls) its 5 scenarios covered no link as staff, 2 as a candidate
STATEFUL_SCENARIOS = 100
STATEFUL_STEPS = 10
# floors below the counts measured (docs/reliability.md), so that a run that silently did little fails
NO_SERVER_ERROR_FLOOR = 3000
AGREEMENT_FLOOR = 1500
STATEFUL_SCENARIOS_FLOOR = 50
LINKS_COVERED_FLOOR = 2  # links whose target answered with a linked id


def run_schemathesis(command: list[str], tmp_path: Path, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)  # its cache: there
    return run, time.monotonic() - started


def counted(output: str) -> tuple[int, int]:
    """(test cases generated, passed) from schemathesis' summary (``Test cases: N generated, N passed``); each test
    case is one API call."""
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    assert found, output[-6000:]
    generated, passed = map(int, found.groups())
    return generated, passed


def phase_times(output: str) -> str:
    """How long each phase took (``Fuzzing (in 12.34s)``), to see where the time goes."""
    found = re.findall(r"(Examples|Coverage|Fuzzing|Stateful) \((?:in|interrupted after) ([\d.]+)s\)", output)
    return ", ".join(f"{phase.lower()} {float(seconds):.0f} s" for phase, seconds in found)


def report(capsys, line: str) -> None:
    """Shown in the test run's output, not only on failure: what the fuzzing did is part of the result."""
    with capsys.disabled():
        print(f"\n{line}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["anonymous", "staff", "candidate"])
def test_no_generated_request_gets_a_server_error(platform, journey, role, tmp_path, capsys):
    token = {"anonymous": None, "staff": journey["staff_token"], "candidate": journey["candidate_token"]}[role]
    command = [SCHEMATHESIS, "run", platform.gateway_url + "/openapi.json", "--checks", "not_a_server_error",
               "--max-examples", str(NO_SERVER_ERROR_EXAMPLES), "--phases", "examples,coverage,fuzzing",
               "--seed", "20261202", "--request-timeout", "20", "--no-color", "--report", "junit",
               "--report-dir", str(tmp_path)]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    run, seconds = run_schemathesis(command, tmp_path, timeout=600)
    summary = run.stdout[-4000:]
    assert run.returncode == 0, f"schemathesis found failures as {role}:\n{summary}\n{run.stderr[-2000:]}"
    generated, passed = counted(run.stdout)
    report(capsys, f"schemathesis, no server error, as {role}: {generated} test cases (API calls), {passed} passed, "
                   f"--max-examples {NO_SERVER_ERROR_EXAMPLES}, {seconds:.0f} s ({phase_times(run.stdout)})")
    assert generated == passed and generated >= NO_SERVER_ERROR_FLOOR, summary  # a few hundred cases at least


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["staff", "candidate"])
def test_the_schema_and_the_service_agree(platform, journey, role, tmp_path, capsys):
    """Issue #19 item 7: with schema-valid data only (positive mode), every answer has a status code the document
    declares for the operation, the declared content type, and a body that matches the declared schema; the
    stateful phase follows the document's links (``Route.links`` in gateway/routes/: a certificate's id from the
    list to its confirmation, an order's number to its closure, a report's code to its share codes; and the links
    schemathesis infers itself) so later operations run against things that exist."""
    token = {"staff": journey["staff_token"], "candidate": journey["candidate_token"]}[role]
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"[phases.stateful]\nmax-steps = {STATEFUL_STEPS}\n\n"
                      f"[phases.stateful.generation]\nmax-examples = {STATEFUL_SCENARIOS}\n")
    command = [SCHEMATHESIS, "--config-file", str(config), "run", platform.gateway_url + "/openapi.json",
               "--mode", "positive",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
               "response_schema_conformance",
               "--max-examples", str(AGREEMENT_EXAMPLES), "--phases", "examples,coverage,fuzzing,stateful",
               "--seed", "20261207", "--request-timeout", "20", "--no-color", "--report", "junit",
               "--report-dir", str(tmp_path), "--header", f"Authorization: Bearer {token}"]
    run, seconds = run_schemathesis(command, tmp_path, timeout=900)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"the schema and the service disagree as {role}:\n{summary}\n{run.stderr[-2000:]}"
    assert "✅ Stateful" in summary, summary  # the links were found and followed (no links: the phase is skipped)
    generated, passed = counted(run.stdout)
    scenarios = re.search(r"Scenarios:\s+(\d+)", run.stdout)
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", run.stdout)
    assert scenarios and links, run.stdout[-8000:]
    covered, selected, total = map(int, links.groups())
    report(capsys, f"schemathesis, schema and service agree, as {role}: {generated} test cases (API calls), "
                   f"{passed} passed, --max-examples {AGREEMENT_EXAMPLES}; stateful: {scenarios.group(1)} scenarios "
                   f"of up to {STATEFUL_STEPS} calls, links {covered} covered / {selected} selected / {total} total; "
                   f"{seconds:.0f} s ({phase_times(run.stdout)})")
    assert generated == passed and generated >= AGREEMENT_FLOOR, summary
    assert int(scenarios.group(1)) >= STATEFUL_SCENARIOS_FLOOR and covered >= LINKS_COVERED_FLOOR, summary
