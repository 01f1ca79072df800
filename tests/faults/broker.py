"""A RabbitMQ node of the fault suite's own, on free ports and in a temporary directory, so that restarting
it never touches the shared broker on 5672 (which other sessions and CI use)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from deploy.platform import free_port

SERVER_SETTING = "RABBITMQ_SERVER"  # names the rabbitmq-server script to use, where discovery would not find it
# where packages put it, after PATH: Debian/Ubuntu (the script itself; /usr/sbin holds a wrapper, see
# ``_the_script``), RPM, Homebrew (Intel and Apple silicon)
SERVER_PLACES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server",
                 "/usr/local/sbin/rabbitmq-server", "/opt/homebrew/sbin/rabbitmq-server")


def _the_script(path: str) -> Path | None:
    """``path`` if it is an executable rabbitmq-server script. Debian's /usr/sbin/rabbitmq-server (a symlink to
    rabbitmq-script-wrapper) is not: run by root it starts the node as the rabbitmq user through ``su``, which
    resets HOME and cannot use this suite's working directory; the script it runs sits beside the wrapper."""
    candidate = Path(path)
    real = candidate.resolve()
    if real.name == "rabbitmq-script-wrapper":
        candidate = real.parent / "rabbitmq-server"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


VERSIONED_SERVERS = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"


def find_server(environ=None, places: tuple[str, ...] = SERVER_PLACES, versioned: str = VERSIONED_SERVERS
                ) -> Path | None:
    """The rabbitmq-server script to start a node with: the one ``RABBITMQ_SERVER`` names (that one or none),
    else the first found on PATH, in ``places`` or in a versioned /usr/lib/rabbitmq/lib directory."""
    environ = os.environ if environ is None else environ
    if environ.get(SERVER_SETTING):
        return _the_script(environ[SERVER_SETTING])
    on_path = shutil.which("rabbitmq-server", path=environ.get("PATH", os.defpath))
    for path in ([on_path] if on_path else []) + list(places) + sorted(glob.glob(versioned), reverse=True):
        if (found := _the_script(path)) is not None:
            return found
    return None


def where_looked(environ=None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(SERVER_SETTING):
        return f"{SERVER_SETTING}={environ[SERVER_SETTING]}"
    return f"PATH, {', '.join(SERVER_PLACES)}, {VERSIONED_SERVERS} (or set {SERVER_SETTING})"


def _server() -> Path:
    server = find_server()
    if server is None:
        raise RuntimeError(f"no rabbitmq-server found; looked at {where_looked()}")
    return server


def _ctl() -> str:
    beside = _server().parent / "rabbitmqctl"  # the control script of the same installation
    if beside.is_file():
        return str(beside)
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmqctl"))
    return found[-1] if found else "rabbitmqctl"


def rabbitmq_available() -> bool:
    return find_server() is not None


def in_ci(environ=None) -> bool:
    """CI services (GitHub Actions, GitLab CI, most others) set CI=true."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_rabbitmq(environ=None) -> None:
    """Skips the calling test where no rabbitmq-server is installed; under CI fails it instead, since a CI run
    that silently skipped the fault suite would report green without having run it."""
    if find_server(environ) is not None:
        return
    message = f"no rabbitmq-server on this machine (looked at {where_looked(environ)})"
    if in_ci(environ):
        pytest.fail(f"{message}: CI must run the fault suite; install RabbitMQ or set {SERVER_SETTING}",
                    pytrace=False)
    pytest.skip(message)


class TestBroker:
    __test__ = False

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.node = f"credence-faults-{os.getpid()}-{self.port}@localhost"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (workdir / "env.conf").write_text("")
        self.env = dict(os.environ, HOME=str(workdir), RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(free_port()),
                        RABBITMQ_MNESIA_BASE=str(workdir / "mnesia"), RABBITMQ_LOG_BASE=str(workdir / "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(workdir / "enabled_plugins"),
                        RABBITMQ_PID_FILE=str(workdir / "pid"), RABBITMQ_CONFIG_FILE=str(workdir / "rabbitmq.conf"),
                        RABBITMQ_CONF_ENV_FILE=str(workdir / "env.conf"), ERL_EPMD_ADDRESS="127.0.0.1")

    @property
    def amqp_uri(self) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> None:
        subprocess.run([str(_server()), "-detached"], env=self.env, check=True, capture_output=True, timeout=30)
        subprocess.run([_ctl(), "-n", self.node, "wait", str(self.workdir / "pid"), "--timeout", str(int(timeout))],
                       env=self.env, check=True, capture_output=True, timeout=timeout + 10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the test broker {self.node} did not open port {self.port}")

    def stop(self) -> None:
        subprocess.run([_ctl(), "-n", self.node, "stop"], env=self.env, capture_output=True, timeout=60)

    def queues(self) -> list[str]:
        """Every queue with its ready and unacknowledged messages and consumers (for a post-mortem)."""
        listed = subprocess.run([_ctl(), "-n", self.node, "list_queues", "-q", "name", "type", "messages_ready",
                                 "messages_unacknowledged", "consumers"], env=self.env, capture_output=True,
                                text=True, timeout=60)
        return listed.stdout.splitlines()

    def restart(self) -> float:
        """Stop and start again (durable queues and persistent messages survive); returns the seconds it was
        down."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began
