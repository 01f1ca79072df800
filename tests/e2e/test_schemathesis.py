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
