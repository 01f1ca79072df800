"""Start, watch and stop the whole platform as separate processes (``make run`` and the e2e tests)."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from credence_common.persistence.migrations import db_uri_from_environment, upgrade
from deploy.processes import DEFAULT_GATEWAY_SERVER, PROCESSES, SERVICE_NAMES, ProcessSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


def broker_problem(amqp_uri: str) -> str | None:
    """None when RabbitMQ answers, else a sentence saying what to do."""
    from kombu import Connection

    try:
        with Connection(amqp_uri, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
        return None
    except Exception as exc:
        shown = amqp_uri.split("@")[-1]
        return (f"RabbitMQ is not reachable at {shown} ({type(exc).__name__}). Start it with "
                "'rabbitmq-server -detached' (or 'sudo systemctl start rabbitmq-server'), "
                "or point AMQP_URI at a running broker.")


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_for_service(amqp_uri: str, service: str, timeout: float,
                     process: subprocess.Popen | None = None) -> bool:
    """True once ``service`` answers its ``health`` RPC: its queue exists and it consumes."""
    from nameko.exceptions import RpcTimeout, UnknownService
    from nameko.standalone.rpc import ServiceRpcProxy

    deadline = time.monotonic() + timeout
    with ServiceRpcProxy(service, {"AMQP_URI": amqp_uri}, timeout=5) as proxy:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                return False
            try:
                return proxy.health()["status"] == "ok"
            except (UnknownService, RpcTimeout):
                # no queue yet, or (durable queue from an earlier run) nobody consuming it yet
                time.sleep(0.1)
    return False


def _ephemeral_ports() -> range:
    """The range the kernel picks outgoing connections' source ports from (Linux; the usual default elsewhere)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A port nobody listens on, for a process to bind a moment later. Taken below the ephemeral range: a port
    the kernel hands out (bind to 0) can be given to an outgoing connection (a database or broker client of a
    process starting meanwhile) before its listener binds it, which then fails with EADDRINUSE (seen once a
    test had opened a thousand connections)."""
    ephemeral = _ephemeral_ports()
    # Never the same port twice in one process: a platform takes seven at once and its processes bind them only
    # later, so each call found the others' ports still free (two processes of a staging platform in a CI run
    # were given one metrics port, and the gateway died with EADDRINUSE)
    candidates = [port for port in range(10000, 30000) if port not in ephemeral and port not in _HANDED_OUT]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # a machine with almost no free low ports: fall back to the kernel's pick
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _HANDED_OUT.add(port)
    return port


_HANDED_OUT: set[int] = set()  # the ports free_port returned in this process


class Platform:
    """The processes of one platform instance, sharing an environment (broker URI, databases, ports)."""

    def __init__(self, env: dict[str, str], log_dir: Path, cwd: Path = REPO_ROOT):
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.processes: dict[str, subprocess.Popen] = {}

    def db_uri(self, service: str) -> str:
        return db_uri_from_environment(service, self.env)

    def metrics_port(self, spec: ProcessSpec) -> int | None:
        if spec.metrics_port_env is None:
            return None
        return int(self.env.get(spec.metrics_port_env, spec.default_metrics_port))

    @property
    def gateway_port(self) -> int:
        return int(self.env.get("GATEWAY_ADDRESS", "127.0.0.1:8000").rsplit(":", 1)[1])

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def migrate(self) -> None:
        previous = Path.cwd()
        os.chdir(self.cwd)  # relative SQLite paths are relative to the repository
        try:
            for service in SERVICE_NAMES:
                upgrade(service, self.db_uri(service))
        finally:
            os.chdir(previous)

    def start(self, names=None, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        specs = [s for s in PROCESSES if names is None or s.name in names]
        for spec in specs:
            self.start_one(spec)
        for spec in specs:
            self.wait_until_ready(spec, timeout)

    def wait_until_ready(self, spec: ProcessSpec, timeout: float = 60.0) -> None:
        process = self.processes[spec.name]
        if spec.name == "gateway":
            ready = wait_for_port(self.gateway_port, timeout, process)
        else:
            ready = wait_for_service(self.env["AMQP_URI"], spec.name, timeout, process)
        if not ready:
            raise RuntimeError(f"{spec.name} did not start; see {self.log_dir / (spec.name + '.log')}:\n"
                               + self.log_tail(spec.name))

    @property
    def gateway_server(self) -> str:
        return self.env.get("GATEWAY_SERVER") or DEFAULT_GATEWAY_SERVER

    def start_one(self, spec: ProcessSpec) -> None:
        command = spec.command(server=self.gateway_server)  # refuses an unknown GATEWAY_SERVER before any start
        log = open(self.log_dir / f"{spec.name}.log", "ab")
        self.processes[spec.name] = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, name: str) -> None:
        """Kill a process abruptly (SIGKILL), as a crash would."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()


def quiet_client_logging() -> None:
    """The launcher's own AMQP clients (readiness probes) should not chatter on the console."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("amqp").setLevel(logging.ERROR)
    logging.getLogger("kombu").setLevel(logging.ERROR)


def main() -> int:
    quiet_client_logging()
    env = dict(os.environ)
    # make run is a developer's platform: it says development (the processes refuse to start unless told where
    # they run); an environment given in the shell is kept, so `CREDENCE_ENV=staging make run` tries staging
    env.setdefault("CREDENCE_ENV", "development")
    amqp_uri = env.setdefault("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
    # report QR codes lead to this gateway unless a public address is given
    env.setdefault("PUBLIC_BASE_URL", "http://" + env.get("GATEWAY_ADDRESS", "127.0.0.1:8000"))
    problem = broker_problem(amqp_uri)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    platform = Platform(env, REPO_ROOT / "var" / "log")
    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt  # interrupts a start-up wait as well as the watch loop

    # Installed before anything starts, so Ctrl-C during start-up never leaves orphan processes.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        print("Applying database migrations ...", flush=True)
        platform.migrate()
        print("Starting identity, scoring, certificates, payments, verification and the gateway ...", flush=True)
        platform.start()
        print(f"\nCredence is running (CREDENCE_ENV={env['CREDENCE_ENV']}).\n"
              f"  Gateway:      {platform.gateway_url} ({platform.gateway_server})\n"
              f"  API docs:     {platform.gateway_url}/openapi.json\n"
              f"  Event docs:   {platform.gateway_url}/asyncapi.json\n"
              f"  Verify page:  {platform.gateway_url}/verify\n"
              f"  Logs:         {platform.log_dir}/\n"
              "Run 'make demo' in another terminal for one candidate's whole journey. Ctrl-C stops everything.",
              flush=True)
        reported: set[str] = set()
        while True:
            for name, process in platform.processes.items():
                if process.poll() is not None and name not in reported:
                    reported.add(name)
                    print(f"{name} exited with code {process.returncode}; last lines of its log:\n"
                          f"{platform.log_tail(name)}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(exc, file=sys.stderr)
        platform.stop()
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("\nStopping ...", flush=True)
    platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
