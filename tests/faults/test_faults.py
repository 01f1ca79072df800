"""Runs the fault suite (tests/faults/suite.py) as a process of its own and requires lost = 0 and
duplicated = 0; its table is kept in var/fault-suite-<backend>.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.broker import rabbitmq_available

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.faults
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not rabbitmq_available(), reason="no rabbitmq-server on this machine")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_journey_loses_or_doubles_anything_under_faults(backend):
    run = subprocess.run([sys.executable, "-m", "tests.faults.suite", "--backend", backend], cwd=REPO,
                         capture_output=True, text=True, timeout=1100)
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-4000:]}"
    assert "lost = 0   duplicated = 0   answers 500 = 0" in run.stdout
