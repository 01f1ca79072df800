"""Runs the fault suite (tests/faults/suite.py) as a process of its own and requires lost = 0 and
duplicated = 0; its table is kept in var/fault-suite-<backend>.txt (sqlite-cluster: the three-node RabbitMQ cluster's
run, tests/faults/cluster.py). It needs a rabbitmq-server to start a node of its
own (found on PATH, where packages put it, or named by RABBITMQ_SERVER: tests/faults/broker.py); without one it is
skipped, and under CI (CI=true) it fails instead. "postgresql-standby" runs it on a PostgreSQL primary and synchronous
standby of its own, failed over during the journeys (tests/faults/standby.py; it needs the PostgreSQL server
binaries, found as tests/faults/standby.py says, and is skipped without them, failed under CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.broker import require_rabbitmq
from tests.faults.standby import require_postgres_binaries

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.faults
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "postgresql-standby", "sqlite-cluster"])
def test_no_journey_loses_or_doubles_anything_under_faults(backend):
    require_rabbitmq()  # skipped where RabbitMQ is not installed, but failed under CI (CI=true)
    # "-standby": a PostgreSQL primary and standby of the suite's own, failed over (tests/faults/standby.py);
    # "-cluster": three RabbitMQ nodes of the suite's own and their faults (tests/faults/cluster.py)
    database, _, mode = backend.partition("-")
    if mode == "standby":
        require_postgres_binaries()
    run = subprocess.run([sys.executable, "-m", "tests.faults.suite", "--backend", database,
                          *({"standby": ["--standby"], "cluster": ["--cluster"]}.get(mode, []))], cwd=REPO,
                         capture_output=True, text=True, timeout=1100)
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-4000:]}"
    assert "lost = 0   duplicated = 0   answers 500 = 0" in run.stdout
