"""A three-node RabbitMQ cluster of the fault suite's own, on this machine: three nodes with their own names,
AMQP and distribution ports, and directories (under one temporary directory), sharing one Erlang cookie, joined
into one cluster. Like tests/faults/broker.py's single node, it never touches the shared broker on 5672.

The suite (``--cluster``) puts a FaultProxy in front of each node and gives the services every proxy's address;
the faults here act on the nodes themselves: SIGKILL one (its beam process, found through the pid file), start
it again and wait until it runs in the cluster again, stop and start each in turn (a rolling restart).

Quorum queues get a member on every node: RabbitMQ 3.10's default initial group size (the ``rabbit`` application's
``quorum_cluster_size``, 3) is the node count here, as long as the queues are declared after the cluster is
formed (a queue declared on a lone node keeps one member); ``replicated_everywhere`` checks it before the faults.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.faults.broker import TestBroker, _ctl, _server
from tests.faults.proxy import FaultProxy

NODES = 3


def _queues_script() -> str:
    beside = Path(_ctl()).parent / "rabbitmq-queues"
    return str(beside) if beside.is_file() else "rabbitmq-queues"


class ClusterNode(TestBroker):
    """One node: TestBroker's layout (ports, directories, ERL_EPMD_ADDRESS=127.0.0.1) with a name of the
    cluster's, and the cluster's cookie in its HOME."""

    __test__ = False

    def __init__(self, workdir: Path, name: str, cookie: str):
        super().__init__(workdir)
        self.name = name
        self.node = f"credence-cluster-{os.getpid()}-{name}@localhost"
        self.env["RABBITMQ_NODENAME"] = self.node
        cookie_file = workdir / ".erlang.cookie"
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)

    def ctl(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([_ctl(), "-n", self.node, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def start_detached(self) -> None:
        subprocess.run([str(_server()), "-detached"], env=self.env, check=True, capture_output=True, timeout=60)

    def os_pid(self) -> int | None:
        try:
            return int((self.workdir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.os_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def sigkill(self) -> int:
        pid = self.os_pid()
        if pid is None:
            raise RuntimeError(f"{self.node}: no pid file")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return pid


class TestCluster:
    __test__ = False

    def __init__(self, workdir: Path, nodes: int = NODES):
        cookie = secrets.token_hex(16).upper()
        self.nodes = [ClusterNode(workdir / f"node-{chr(ord('a') + n)}", chr(ord("a") + n), cookie)
                      for n in range(nodes)]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def amqp_uri(self) -> str:
        """Every node, in kombu's failover syntax (straight to the nodes, not through any proxy)."""
        return ";".join(node.amqp_uri for node in self.nodes)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name or node.node == name)

    def start(self) -> None:
        """Start every node, join the second and third to the first, and wait until all three run."""
        for node in self.nodes:
            node.start_detached()
        for node in self.nodes:
            self._wait_booted(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        self.await_online(len(self.nodes))

    @staticmethod
    def _wait_booted(node: ClusterNode, timeout: float = 180.0) -> None:
        node.ctl("wait", str(node.workdir / "pid"), "--timeout", str(int(timeout)), timeout=timeout + 30)
        if not _port_open(node.port, timeout):
            raise RuntimeError(f"{node.node} did not open port {node.port}")

    def await_online(self, count: int, via: ClusterNode | None = None, timeout: float = 180.0) -> None:
        via = via or next(node for node in self.nodes if node.alive())
        via.ctl("await_online_nodes", str(count), "--timeout", str(int(timeout * 1000)), timeout=timeout + 30)

    def running_nodes(self, via: ClusterNode | None = None) -> list[str]:
        via = via or next(node for node in self.nodes if node.alive())
        status = via.ctl("cluster_status", "--formatter", "json", timeout=60)
        return sorted(json.loads(status.stdout).get("running_nodes", []))

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.ctl("stop", check=False, timeout=120)
            except subprocess.TimeoutExpired:
                pass
            if node.alive():  # a node that would not stop is not left behind
                node.sigkill()

    # -- what the suite reads ------------------------------------------------------------------------------

    def queues(self) -> list[str]:
        """Every queue as a line (name, type, leader, messages, members), for the suite's post-mortem."""
        return [f"{q.get('name')}\t{q.get('type')}\tleader {q.get('leader')}\t{q.get('messages')} messages, "
                f"{q.get('messages_unacknowledged')} unacknowledged\t{q.get('consumers')} consumers\t"
                f"{len(q.get('members') or [])} members" for q in self.queue_table()]

    def queue_table(self, via: ClusterNode | None = None) -> list[dict]:
        """Every queue: name, type, leader and members (quorum queues), messages."""
        via = via or next(node for node in self.nodes if node.alive())
        listed = via.ctl("list_queues", "-q", "--formatter", "json", "name", "type", "leader", "messages",
                         "messages_unacknowledged", "consumers", "members", timeout=120, check=False)
        try:
            queues = json.loads(listed.stdout or "[]")
        except ValueError:
            return []
        return queues

    def busiest_leader(self) -> ClusterNode:
        """The node leading the quorum queues with the most messages (ties: the most quorum queues)."""
        weight: dict[str, tuple[int, int]] = {node.node: (0, 0) for node in self.nodes}
        for queue in self.queue_table():
            if queue.get("type") == "quorum" and queue.get("leader") in weight:
                messages, count = weight[queue["leader"]]
                weight[queue["leader"]] = (messages + int(queue.get("messages") or 0), count + 1)
        return self.node(max(weight, key=lambda name: weight[name]))

    def quorum_members(self) -> dict[str, int]:
        """How many members each quorum queue has."""
        return {q["name"]: len(q.get("members") or []) for q in self.queue_table() if q.get("type") == "quorum"}

    # -- faults --------------------------------------------------------------------------------------------

    def kill_and_restart(self, node: ClusterNode, while_down: Callable[[], None] = lambda: None) -> None:
        """SIGKILL the node's beam process, wait until the others see it gone, call ``while_down``, start it
        again and wait until every node runs in the cluster."""
        node.sigkill()
        others = [other for other in self.nodes if other is not node]
        self.await_online(len(self.nodes) - 1, via=others[0])
        while_down()
        node.start_detached()
        self._wait_booted(node)
        self.await_online(len(self.nodes), via=node)

    def wait_not_quorum_critical(self, node: ClusterNode, timeout: float = 180.0) -> None:
        """Until stopping ``node`` would leave every quorum queue with a majority (its restarted peers caught up)."""
        deadline = time.monotonic() + timeout
        while True:
            check = subprocess.run([_queues_script(), "-n", node.node, "check_if_node_is_quorum_critical"],
                                   env=node.env, capture_output=True, text=True, timeout=120)
            if check.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.node} stayed quorum-critical: {check.stdout}{check.stderr}")
            time.sleep(1)

    def rolling_restart(self) -> dict[str, float]:
        """Each node stopped and started in turn; the next one only once the last is back in the cluster.
        Returns the seconds each node was down (from its stop to the cluster's three nodes running)."""
        down: dict[str, float] = {}
        for node in self.nodes:
            self.wait_not_quorum_critical(node)
            began = time.monotonic()
            node.ctl("stop", timeout=180)
            others = [other for other in self.nodes if other is not node]
            self.await_online(len(self.nodes) - 1, via=others[0])
            node.start_detached()
            self._wait_booted(node)
            self.await_online(len(self.nodes), via=node)
            down[node.name] = time.monotonic() - began
        return down


class FaultProxies(list):
    """A FaultProxy in front of each node, in the nodes' order."""

    def close(self) -> None:
        for proxy in self:
            proxy.close()

    @staticmethod
    def live_links(proxy: FaultProxy) -> int:
        """Connections open through ``proxy`` (its list keeps closed ones until the next drop; a closed socket's
        fileno is -1)."""
        with proxy._lock:
            return sum(client.fileno() != -1 for client, _upstream in proxy._links)

    def busiest(self) -> FaultProxy:
        """The proxy most clients are connected through (kombu tries the nodes in the order given, so most
        clients sit on the first node that answered them)."""
        return max(self, key=self.live_links)

    @property
    def amqp_uri(self) -> str:
        return ";".join(f"pyamqp://guest:guest@127.0.0.1:{proxy.port}/" for proxy in self)


def start_cluster(workdir: Path) -> tuple[TestCluster, FaultProxies]:
    """The cluster, started and joined, with a fault proxy in front of each node (what the services reach)."""
    cluster = TestCluster(workdir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster, FaultProxies(FaultProxy(node.port) for node in cluster.nodes)


def replicated_everywhere(cluster: TestCluster) -> str:
    """A line for the report: how many quorum queues have a member on every node; raises if one has fewer (a
    run whose queues are not replicated would prove nothing about a node's loss)."""
    table = cluster.queue_table()
    members = {q["name"]: len(q.get("members") or []) for q in table if q.get("type") == "quorum"}
    short = {name: count for name, count in members.items() if count < len(cluster.nodes)}
    if not members or short:
        raise RuntimeError(f"quorum queues not on all {len(cluster.nodes)} nodes: {short or 'none declared'}")
    rpc = {q["name"]: q.get("type") for q in table if q["name"].startswith("rpc-")}
    if not rpc or set(rpc.values()) != {"quorum"}:  # credence_common/bus/rpc_queue.py
        raise RuntimeError(f"RPC queues not all quorum queues: {rpc}")
    return (f"quorum queues with a member on each of the {len(cluster.nodes)} nodes: {len(members)} of "
            f"{len(members)}, the {len(rpc)} RPC queues among them")


JOURNEYS_WHILE_DOWN = 3


def cluster_plan(cluster: TestCluster, proxies: FaultProxies, notes: list[str], completed: Callable[[], int],
                 on_stall: Callable[[str], None] = lambda _report: None) -> list[tuple[str, Callable[[], object]]]:
    """The faults of ``--cluster``, one at a time under journeys (tests/faults/suite.py strikes them); what each
    struck is added to ``notes``, for the report. ``completed``: how many journeys have completed so far;
    ``on_stall(report)``: called when they stop completing while a node is down, before the run fails."""

    def note(line: str) -> None:
        print(f"  {line}", flush=True)
        notes.append(line)
    def kill_busiest() -> None:
        node = cluster.busiest_leader()
        led = [q["name"] for q in cluster.queue_table() if q.get("leader") == node.node]
        note(f"SIGKILLed node {node.name}, leader of {len(led)} of the quorum queues")
        cluster.kill_and_restart(node, while_down=lambda: journeys_on_two_nodes(node.name))

    def journeys_on_two_nodes(down: str, timeout: float = 150.0) -> None:
        """The platform works on the two nodes left: wait until a few whole journeys complete before the
        killed node comes back (a positive signal; a platform stuck on the dead node fails the run here)."""
        began, first = time.monotonic(), completed()
        while completed() < first + JOURNEYS_WHILE_DOWN:
            if time.monotonic() - began > timeout:
                survivor = next(n for n in cluster.nodes if n.alive())
                consumers = survivor.ctl("list_consumers", "-q", "queue_name", "channel_pid", "ack_required",
                                         "prefetch_count", timeout=120, check=False).stdout
                bindings = survivor.ctl("list_bindings", "-q", "source_name", "destination_name", "routing_key",
                                        timeout=120, check=False).stdout
                rpc_bindings = "\n".join(line for line in bindings.splitlines() if line.startswith("nameko-rpc"))
                report = (f"only {completed() - first} journeys completed in {timeout:.0f} s while node {down} was "
                          f"down; the queues (as the nodes left see them):\n" + "\n".join(cluster.queues())
                          + f"\nconsumers:\n{consumers}\nbindings of nameko-rpc:\n{rpc_bindings}\n"
                          + "probes (a fresh connection to each node left, mandatory publish with confirm):\n"
                          + "\n".join(probe_rpc_routes(cluster)))
                on_stall(report)
                raise RuntimeError(report)
            time.sleep(0.2)
        note(f"while node {down} was down: {completed() - first} journeys completed in "
             f"{time.monotonic() - began:.1f} s")

    def cut_off() -> None:
        proxy = proxies.busiest()
        note(f"cut off node {cluster.nodes[proxies.index(proxy)].name}: {proxies.live_links(proxy)} client connections "
             f"(the other nodes: {', '.join(str(proxies.live_links(o)) for o in proxies if o is not proxy)})")
        proxy.refuse(10)

    def rolling_restart() -> None:
        down = cluster.rolling_restart()
        note("rolling restart, seconds each node was down: "
             + ", ".join(f"{name} {seconds:.1f}" for name, seconds in down.items()))

    return [("SIGKILL the node leading the busiest queues, restart", kill_busiest),
            ("one node cut off from every client for 10 s", cut_off),
            ("rolling restart of the three nodes", rolling_restart)]


def probe_rpc_routes(cluster: TestCluster) -> list[str]:
    """For a stall's post-mortem: on each running node, publish a health call to every service's RPC route,
    mandatory and confirmed, and say whether the broker routed it (no reply is awaited)."""
    from kombu import Connection, Exchange, Producer

    lines = []
    for node in cluster.nodes:
        if not node.alive():
            continue
        for service in ("identity", "scoring", "certificates", "payments", "verification"):
            returned: list[str] = []
            try:
                with Connection(node.amqp_uri, transport_options={"confirm_publish": True}) as connection:
                    channel = connection.channel()
                    # a returned message arrives before the confirm the publish waits for
                    channel.events["basic_return"].add(lambda *args, seen=returned: seen.append(str(args[0])))
                    Producer(channel, exchange=Exchange("nameko-rpc", type="topic", durable=True)).publish(
                        {"args": [], "kwargs": {}}, routing_key=f"{service}.health", mandatory=True,
                        serializer="json", retry=False, reply_to="faults-probe", correlation_id="faults-probe")
            except Exception as exc:  # what failed is the finding
                lines.append(f"{node.name} {service}: {type(exc).__name__}: {exc}")
                continue
            lines.append(f"{node.name} {service}: {'returned ' + returned[0] if returned else 'routed, confirmed'}")
    return lines


def _port_open(port: int, timeout: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False
