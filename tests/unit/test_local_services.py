"""`make run` and `make test` start RabbitMQ (with its management API) and PostgreSQL when they are installed
but down, and say what they did (deploy/local-services). The shared broker and database are never stopped
here: the script is run against stand-ins on free ports, commands that open those ports as the real ones
would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.platform import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-services"

# a stand-in server: listens on a port until killed, its pid in a file (started in the background like a daemon)
LISTENER = """import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); open(sys.argv[2], "w").write(str(__import__("os").getpid()))
while True: time.sleep(60)
"""


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def stand_ins(tmp_path):
    bin_dir, pids = tmp_path / "bin", tmp_path / "pids"
    bin_dir.mkdir()
    pids.mkdir()
    (tmp_path / "listener.py").write_text(LISTENER)
    (tmp_path / "clusters" / "15").mkdir(parents=True)
    ports = {"AMQP_PORT": free_port(), "MANAGEMENT_PORT": free_port(), "PG_PORT": free_port()}
    listen = f"nohup {sys.executable} {tmp_path}/listener.py"
    _stub(bin_dir, "rabbitmq-server", f'echo "$*" >> {tmp_path}/calls; {listen} {ports["AMQP_PORT"]} '
                                      f'{pids}/amqp >/dev/null 2>&1 &')
    _stub(bin_dir, "rabbitmqctl", f'echo "rabbitmqctl $*" >> {tmp_path}/calls')
    _stub(bin_dir, "rabbitmq-plugins", f'echo "plugins $*" >> {tmp_path}/calls; {listen} {ports["MANAGEMENT_PORT"]} '
                                       f'{pids}/management >/dev/null 2>&1 &')
    _stub(bin_dir, "pg_isready", f'(exec 3<>/dev/tcp/127.0.0.1/{ports["PG_PORT"]}) 2>/dev/null || exit 2')
    _stub(bin_dir, "pg_ctlcluster", f'echo "pg_ctlcluster $*" >> {tmp_path}/calls; {listen} {ports["PG_PORT"]} '
                                    f'{pids}/pg >/dev/null 2>&1 &')
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PG_CLUSTERS": str(tmp_path / "clusters"), "LOCAL_SERVICES_WAIT_SECONDS": "20"}
    yield env, tmp_path
    for pid_file in pids.iterdir():
        os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _run(env, *services) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *services], env=env, capture_output=True, text=True, timeout=90)


def _open(port: str) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", int(port))) == 0


def test_what_is_down_is_started_and_said(stand_ins):
    env, tmp_path = stand_ins
    done = _run(env, "rabbitmq", "management", "postgresql")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(_open(env[port]) for port in ("AMQP_PORT", "MANAGEMENT_PORT", "PG_PORT"))
    calls = (tmp_path / "calls").read_text()
    assert "-detached" in calls and "rabbitmqctl await_startup" in calls
    assert "plugins enable rabbitmq_management" in calls and "pg_ctlcluster --skip-systemctl-redirect 15 main start" \
        in calls
    for said in ("RabbitMQ was down", "management API was off", "PostgreSQL was down"):
        assert said in done.stdout

    again = _run(env, "rabbitmq", "management", "postgresql")  # all up now: nothing started, nothing said
    assert again.returncode == 0 and again.stdout == ""
    assert (tmp_path / "calls").read_text() == calls


def test_what_is_not_installed_is_reported_and_left_to_the_preflight(stand_ins):
    env, tmp_path = stand_ins
    for name in ("rabbitmq-server", "pg_ctlcluster"):
        (tmp_path / "bin" / name).unlink()
    basics = tmp_path / "basics"  # the shell and the few tools the script uses, and none of the real servers
    basics.mkdir()
    for tool in ("bash", "seq", "sleep", "ls", "sort", "tail"):
        (basics / tool).symlink_to(shutil.which(tool))
    env = {**env, "PATH": f"{tmp_path}/bin:{basics}"}
    done = _run(env, "rabbitmq", "postgresql")
    assert done.returncode == 0
    assert "RabbitMQ is not installed" in done.stdout and "PostgreSQL is not installed" in done.stdout


def test_make_run_and_make_test_use_it():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.S | re.M).group(0)
    test = re.search(r"^test:.*?(?=^\S)", makefile, re.S | re.M).group(0)
    assert "deploy/local-services rabbitmq" in run
    assert "deploy/local-services rabbitmq management postgresql" in test
    assert test.index("local-services") < test.index("deploy.preflight")  # started before it is checked


def test_free_port_never_hands_out_the_same_port_twice_in_a_process():
    # a platform takes seven ports before any of its processes binds one (a CI run lost a staging platform's
    # gateway to two processes given one metrics port)
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
