"""Hostile input: schemathesis generates requests for every operation in ``/openapi.json`` (examples, the
coverage phase's boundary values and random fuzzing) as an anonymous caller, as staff and as a candidate,
and no answer may be a 5xx. It runs as its own process (no eventlet), against a platform of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@pytest.mark.parametrize("role", ["anonymous", "staff", "candidate"])
def test_no_generated_request_gets_a_server_error(platform, journey, role, tmp_path):
    token = {"anonymous": None, "staff": journey["staff_token"], "candidate": journey["candidate_token"]}[role]
    command = [SCHEMATHESIS, "run", platform.gateway_url + "/openapi.json", "--checks", "not_a_server_error",
               "--max-examples", "3", "--phases", "examples,coverage,fuzzing", "--seed", "20261202",
               "--request-timeout", "20", "--no-color", "--report", "junit", "--report-dir", str(tmp_path)]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache stays there
    summary = run.stdout[-4000:]
    assert run.returncode == 0, f"schemathesis found failures as {role}:\n{summary}\n{run.stderr[-2000:]}"
    counted = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counted, summary
    generated, passed = map(int, counted.groups())
    assert generated == passed and generated >= 300, summary  # a few hundred cases at least


@pytest.mark.parametrize("role", ["staff", "candidate"])
def test_the_schema_and_the_service_agree(platform, journey, role, tmp_path):
    """Issue #19 item 7: with schema-valid data only (positive mode), every answer has a status code the document
    declares for the operation, the declared content type, and a body that matches the declared schema; the
    stateful phase follows the document's links (an application's id to its withdrawal, a report's code to its
    share codes) so later operations run against things that exist."""
    token = {"staff": journey["staff_token"], "candidate": journey["candidate_token"]}[role]
    command = [SCHEMATHESIS, "run", platform.gateway_url + "/openapi.json", "--mode", "positive",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
               "response_schema_conformance",
               "--max-examples", "5", "--phases", "examples,coverage,fuzzing,stateful", "--seed", "20261207",
               "--request-timeout", "20", "--no-color", "--report", "junit", "--report-dir", str(tmp_path),
               "--header", f"Authorization: Bearer {token}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"the schema and the service disagree as {role}:\n{summary}\n{run.stderr[-2000:]}"
    assert "✅ Stateful" in summary, summary  # the links were found and followed (no links: the phase is skipped)
    counted = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(1)) >= 500, summary
