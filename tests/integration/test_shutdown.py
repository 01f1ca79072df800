"""Graceful shutdown of a service process (credence_common.runtime.runner, which every service and the gateway run
under): SIGTERM lets running work finish and answer, takes no new work, and exits 0; a service that cannot
drain (its broker is gone) is killed after SHUTDOWN_GRACE_SECONDS instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import eventlet
from nameko.exceptions import UnknownService
from nameko.standalone.rpc import ServiceRpcProxy

from credence_common.observability.logs import read_json_log
from tests.faults.proxy import FaultProxy
from tests.integration.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
AMQP_URI: ${AMQP_URI}
SHUTDOWN_GRACE_SECONDS: ${SHUTDOWN_GRACE_SECONDS:25}
LOG_LEVEL: INFO
"""


def log_text(path: Path) -> str:
    """The probe's log (JSON lines, as every process writes) as plain text: each line's message and traceback."""
    records = read_json_log(path.read_text())
    assert records and all("level" in record for record in records[:1]), "the log is not JSON lines"
    return "\n".join(record.get("message", "") + "\n" + record.get("exception", "") for record in records)


def start_probe(tmp_path: Path, amqp_uri: str, log_name: str = "probe.log", **env) -> subprocess.Popen:
    config = tmp_path / "probe.yml"
    config.write_text(CONFIG)
    environment = dict(os.environ, AMQP_URI=amqp_uri, PYTHONPATH=str(ROOT), **env)
    log = open(tmp_path / log_name, "wb")
    return subprocess.Popen([sys.executable, "-m", "credence_common.runtime.runner", str(config),
                             "tests.integration.shutdown_probe:ShutdownProbe"], cwd=ROOT, env=environment,
                            stdout=log, stderr=subprocess.STDOUT)


def call(amqp_uri: str, seconds: float, marker: Path | None = None, timeout: float = 60) -> str:
    with ServiceRpcProxy("shutdown_probe", {"AMQP_URI": amqp_uri}, timeout=timeout) as probe:
        return probe.work(seconds, str(marker) if marker else None)


def wait_until_serving(amqp_uri: str, process: subprocess.Popen) -> None:
    def answers() -> bool:
        assert process.poll() is None, "the probe exited at start-up"
        try:
            return call(amqp_uri, 0, timeout=5) == "done"
        except UnknownService:  # its queue is not declared yet
            return False

    wait_for(answers, what="the probe serving", timeout=60, interval=0.3)


def slow_request_in_flight(amqp_uri: str, process: subprocess.Popen, seconds: float, tmp_path: Path):
    """Once the probe serves, a request that takes ``seconds``; returns when the probe has started it."""
    wait_until_serving(amqp_uri, process)
    marker = tmp_path / "started"
    running = eventlet.spawn(call, amqp_uri, seconds, marker)
    wait_for(marker.exists, what="the slow request started")
    return running


def exit_code(process: subprocess.Popen, within: float) -> int | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return process.returncode
        eventlet.sleep(0.1)
    return None


def test_sigterm_lets_running_work_finish_takes_no_new_work_and_exits_cleanly(rabbit_config, tmp_path):
    amqp = rabbit_config["AMQP_URI"]
    first = start_probe(tmp_path, amqp, "first.log")
    second = None
    try:
        running = slow_request_in_flight(amqp, first, 5, tmp_path)
        first.send_signal(signal.SIGTERM)
        # nameko cancels its consumers on its consumer loop's next turn (within a second); what it took before
        # that is drained like the rest
        eventlet.sleep(2)
        arriving = eventlet.spawn(call, amqp, 0)  # sent while the first instance drains
        assert running.wait() == "done"  # finished and answered although SIGTERM came in the middle
        assert exit_code(first, within=20) == 0
        assert not arriving.dead, arriving.wait()  # nobody took it: the stopping instance did not
        second = start_probe(tmp_path, amqp, "second.log")
        assert arriving.wait() == "done"  # it waited in the queue for the next instance
        log = log_text(tmp_path / "first.log")
        assert "stopping: no new work" in log and "shutdown_probe: stopped" in log and "Traceback" not in log
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_a_service_that_cannot_drain_is_killed_after_its_grace_period(rabbit_config, tmp_path):
    host_port = rabbit_config["AMQP_URI"].split("@", 1)[1].split("/", 1)[0]
    proxy = FaultProxy(int(host_port.rsplit(":", 1)[1]))
    vhost = rabbit_config["AMQP_URI"].rsplit("/", 1)[1]
    amqp = f"pyamqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"
    probe = start_probe(tmp_path, amqp, SHUTDOWN_GRACE_SECONDS="3")
    try:
        wait_until_serving(amqp, probe)
        proxy.start_refusing()  # the broker is gone for good: nameko's consumer keeps trying to reconnect
        eventlet.sleep(1)
        probe.send_signal(signal.SIGTERM)
        code = exit_code(probe, within=30)
        log = log_text(tmp_path / "probe.log")
        assert code is not None, "the service did not exit after SIGTERM:\n" + log[-3000:]
        assert code in (0, 1)
        if code == 1:
            assert "did not stop within 3 s" in log
    finally:
        proxy.close()
        if probe.poll() is None:
            probe.kill()
            probe.wait()


def test_sigusr1_logs_where_every_green_thread_is_waiting(rabbit_config, tmp_path):
    amqp = rabbit_config["AMQP_URI"]
    probe = start_probe(tmp_path, amqp)
    try:
        running = slow_request_in_flight(amqp, probe, 3, tmp_path)
        probe.send_signal(signal.SIGUSR1)
        log = tmp_path / "probe.log"
        wait_for(lambda: "green threads" in log_text(log), what="the stacks logged")
        assert 'shutdown_probe.py", line' in log_text(log) and "in work" in log_text(log)  # the worker
        assert running.wait() == "done" and probe.poll() is None  # and the service goes on
    finally:
        probe.kill()
        probe.wait()
