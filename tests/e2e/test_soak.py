"""The soak's machinery end to end (bench/soak.py, issue #22 item 7): a one-minute run on SQLite against a RabbitMQ
node of its own must load the whole platform, sample every process, queue and table, drain and pass; the 30-minute
run itself is `make soak` (docs/reliability.md "Soak"). Skipped where no rabbitmq-server is installed, failed under
CI instead (tests/faults/broker.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.processes import PROCESSES
from tests.faults.broker import require_rabbitmq

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_a_one_minute_soak_samples_everything_drains_and_passes(tmp_path):
    require_rabbitmq()
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", "1", "--warmup-minutes", "0",
                          "--sample-seconds", "5", "--report-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                         text=True, timeout=400)
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-4000:]}"
    report = (tmp_path / "soak-sqlite.txt").read_text()
    assert report.rstrip().endswith("PASSED")
    with open(tmp_path / "soak-sqlite.csv") as samples:
        rows = list(csv.DictReader(samples))
    measured = {row["name"] for row in rows if row["kind"] == "rss_mib"}
    assert {spec.name for spec in PROCESSES} <= measured
    assert {row["name"] for row in rows if row["kind"] == "queue"} >= {"rpc-identity", "rpc-scoring"}
    tables = {row["name"]: float(row["value"]) for row in rows if row["kind"] == "rows"}  # the last sample's
    assert tables["certificates.certificates"] > 0 and tables["scoring.outbox_unpublished"] == 0
    assert "every queue drained after the load" in report
    assert "<polyline" in (tmp_path / "soak-sqlite-rss.svg").read_text()
