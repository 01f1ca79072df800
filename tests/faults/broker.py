"""A RabbitMQ node of the fault suite's own, on free ports and in a temporary directory, so that restarting
it never touches the shared broker on 5672 (which other sessions and CI use)."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
from pathlib import Path

from deploy.platform import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _ctl() -> str:
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmqctl"))
    return found[-1] if found else "rabbitmqctl"




def rabbitmq_available() -> bool:
    return Path(SERVER).exists()


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
        subprocess.run([SERVER, "-detached"], env=self.env, check=True, capture_output=True, timeout=30)
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
