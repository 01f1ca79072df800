"""The fault suite: candidate journeys keep flowing through the gateway while faults strike one at a time,
then the databases and a downstream subscriber are counted: nothing lost, nothing doubled.

    make test-faults                          # alone (`make test` runs it too, via tests/faults/test_faults.py)
    .venv/bin/python -m tests.faults.suite    # the same, printing the table
    .venv/bin/python -m tests.faults.suite --cluster   # on a three-node RabbitMQ cluster (tests/faults/cluster.py)

It runs as a plain process: the test process is monkey-patched by eventlet for nameko's fixtures, and
threads, pipes and sockets of this driver do not mix with that.

The platform runs as separate processes (as `make run` starts it) on SQLite files, against a RabbitMQ node of
the suite's own (tests/faults/broker.py: free ports, a temporary directory; the shared broker is never
touched) reached through a TCP fault proxy (tests/faults/proxy.py). Journeys are `deploy.journey.run_journey`
with patience: a request a fault breaks is resent with the same Idempotency-Key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from kombu import Connection, Consumer, Exchange, Producer, Queue

from credence_common.bus.outbox_relay import event_exchange
from deploy.journey import DEV_STAFF_PASSWORD, run_journey
from deploy.platform import Platform, free_port
from deploy.processes import BY_NAME, PROCESSES, SERVICE_NAMES
from tests.faults.broker import TestBroker, rabbitmq_available, where_looked
from tests.faults.cluster import TestCluster, cluster_plan, replicated_everywhere, start_cluster
from tests.faults.proxy import FaultProxy
from tests.faults.standby import CallerView, ReplicatedPostgres, failover_plan

JOURNEY_THREADS = 3
PATIENCE = 150.0  # seconds a journey keeps retrying what a fault broke
ISSUED = "credence.certificate.issued.v1"


class Subscriber(threading.Thread):
    """A downstream system: its own durable queue on the certificate events, straight on the broker (not
    through the proxy), reconnecting whenever the broker goes away. Records every delivery."""

    def __init__(self, amqp_uri: str, queue_arguments: dict | None = None):
        super().__init__(daemon=True)
        self.amqp_uri = amqp_uri
        self.deliveries: list[tuple[str, str]] = []  # (event id, certificate id)
        self.envelopes: dict[str, dict] = {}
        self.stopping = False
        self.queue = Queue("faults.downstream-registry", exchange=event_exchange("certificates"), routing_key=ISSUED,
                           durable=True, queue_arguments=queue_arguments)
        with Connection(amqp_uri) as connection:
            self.queue(connection.channel()).declare()  # before any event: none is published into the void

    def run(self) -> None:
        while not self.stopping:
            try:
                with Connection(self.amqp_uri, heartbeat=10) as connection, \
                        Consumer(connection.channel(), queues=[self.queue], callbacks=[self._on_message],
                                 accept=["json"]):
                    while not self.stopping:
                        try:
                            connection.drain_events(timeout=0.5)
                        except TimeoutError:
                            continue
            except Exception:
                time.sleep(0.5)

    def _on_message(self, body, message) -> None:
        envelope = body if isinstance(body, dict) else json.loads(body)
        self.deliveries.append((envelope["id"], envelope["data"]["certificate_id"]))
        self.envelopes[envelope["id"]] = envelope
        message.ack()


class Journeys:
    """Candidates going through the whole journey, ``JOURNEY_THREADS`` at a time, until stopped."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.started = 0
        self.completed: list[dict] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(n + 1,), daemon=True)
                         for n in range(JOURNEY_THREADS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _loop(self, thread: int) -> None:
        journeys = 0
        while not self._stop.is_set():
            self.started += 1
            journeys += 1
            # each journey calls from an address of its own (127.0.<thread>.<n>), as candidates do: the
            # per-address limits (texted codes per day) would otherwise stop a single test client
            source_address = f"127.0.{thread}.{journeys % 250 + 1}"
            try:
                self.completed.append(run_journey(self.base_url, say=lambda _line: None,
                                                  staff_password=DEV_STAFF_PASSWORD, patience=PATIENCE,
                                                  source_address=source_address))
            except Exception as exc:  # counted and reported; a failed journey is not by itself a loss
                self.failed.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=PATIENCE * 3)


def rows(db: str, sql: str) -> list[tuple]:
    """``db``: a SQLite file path or a PostgreSQL URI (read directly, not through the fault proxy)."""
    if db.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        from credence_common.persistence.db import normalise_db_uri

        engine = create_engine(normalise_db_uri(db))
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text(sql))]
        finally:
            engine.dispose()
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql).fetchall()


POSTGRES_ADMIN_URI = os.environ.get("CREDENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def rig(workdir: Path, backend: str, standby: ReplicatedPostgres | None = None, cluster: bool = False):
    if cluster:  # three nodes, a proxy in front of each; the services get every proxy (tests/faults/cluster.py)
        broker, proxy = start_cluster(workdir / "cluster")
        amqp_uri = proxy.amqp_uri
    else:
        broker = TestBroker(workdir / "broker")
        broker.start()
        proxy = FaultProxy(broker.port)
        amqp_uri = f"pyamqp://guest:guest@127.0.0.1:{proxy.port}/"
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_URI")}
    env.update({"CREDENCE_ENV": "development", "AMQP_URI": amqp_uri,
                "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}", "OUTBOX_POLL_INTERVAL": "0.2",
                "PUBLIC_RATE_LIMIT_PER_MINUTE": "100000", "CHECKS_PER_NUMBER_PER_MINUTE": "100000",
                "REPORT_DELAY_WORKING_DAYS": "0", "EVENT_RETRY_BASE_SECONDS": "0.5", "RPC_TIMEOUT_SECONDS": "8",
                "LOG_LEVEL": os.environ.get("FAULT_SUITE_LOG_LEVEL", "WARNING"),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    env["PUBLIC_BASE_URL"] = "http://" + env["GATEWAY_ADDRESS"]
    if cluster:  # rpc-<service> replicated over the nodes, as a cluster is configured (docs/operations.md)
        env["RPC_QUEUE_TYPE"] = "quorum"
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    databases: dict[str, str] = {}  # service -> where the suite reads it (not through the proxy)
    database_proxy = None
    if standby is not None:  # the suite's own primary and standby; every URI names both (tests/faults/standby.py)
        from sqlalchemy import create_engine, text

        from credence_common.persistence.db import normalise_db_uri

        admin = create_engine(normalise_db_uri(standby.admin_uri), isolation_level="AUTOCOMMIT")
        for service in SERVICE_NAMES:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "credence_faults_{service}"'))
            databases[service] = env[f"{service.upper()}_DB_URI"] = standby.service_uri(f"credence_faults_{service}")
        admin.dispose()
    elif backend == "postgresql":
        from sqlalchemy import create_engine, text

        from credence_common.persistence.db import normalise_db_uri

        host, port = POSTGRES_ADMIN_URI.split("@", 1)[1].split("/", 1)[0].split(":")
        database_proxy = FaultProxy(int(port))
        admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
        for service in SERVICE_NAMES:
            name = f"credence_faults_{service}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            databases[service] = POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
            env[f"{service.upper()}_DB_URI"] = f"postgresql://postgres@127.0.0.1:{database_proxy.port}/{name}"
        admin.dispose()
    else:
        for service in SERVICE_NAMES:
            databases[service] = str(workdir / f"{service}.sqlite")
            env[f"{service.upper()}_DB_URI"] = f"sqlite:///{databases[service]}"
    platform = Platform(env, workdir / "log")
    return platform, broker, proxy, database_proxy, databases


def drop_databases(databases: dict[str, str]) -> None:
    from sqlalchemy import create_engine, text

    from credence_common.persistence.db import normalise_db_uri

    admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for uri in databases.values():
            connection.execute(text(f'DROP DATABASE IF EXISTS "{uri.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def restart(platform: Platform, name: str) -> None:
    platform.start_one(BY_NAME[name])
    platform.wait_until_ready(BY_NAME[name], timeout=90)


def rpc_consumers(amqp_uri: str, service: str) -> int:
    """How many instances of ``service`` consume its RPC queue (nameko's ``rpc-<service>``), as the broker says."""
    with Connection(amqp_uri, connect_timeout=10) as connection:
        return connection.default_channel.queue_declare(f"rpc-{service}", passive=True).consumer_count


def second_instance(platform: Platform, name: str, seconds: float) -> None:
    """Scale a service to two instances for ``seconds`` of load once the second one consumes, then stop it
    gracefully (SIGTERM): it must exit 0."""
    log = open(platform.log_dir / f"{name}-2.log", "ab")
    spec = BY_NAME[name]
    # no metrics server: a port picked here can be taken by a client connection before the process binds it,
    # and the instance would not start (seen once); the suite reads nothing from its metrics
    env = dict(platform.env, **{spec.metrics_port_env: "0"})
    before = rpc_consumers(platform.env["AMQP_URI"], name)
    extra = subprocess.Popen(spec.command(), cwd=platform.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    log.close()
    try:
        # on a loaded 2-core machine a process can take over 8 s to import and connect: the load starts when
        # the broker counts its consumer, not when it was spawned
        deadline = time.monotonic() + 120
        while rpc_consumers(platform.env["AMQP_URI"], name) <= before:
            if extra.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second {name} instance never consumed (exit {extra.poll()}); see its log")
            time.sleep(0.2)
        time.sleep(seconds)
        if extra.poll() is not None:
            raise RuntimeError(f"the second {name} instance exited with {extra.returncode}; see its log")
    finally:
        extra.terminate()
        try:
            extra.wait(timeout=30)
        except subprocess.TimeoutExpired:
            extra.kill()
            extra.wait(timeout=10)
    if extra.returncode != 0:  # a drain that hung until the runner's grace kill exits 1 (nameko_fixes.py)
        raise RuntimeError(f"the second {name} instance did not stop cleanly (exit {extra.returncode}); see its log")


def start_while_broker_unreachable(platform: Platform, proxy: FaultProxy, name: str) -> None:
    """Restart a service while the broker cannot be reached: it must wait for it, not crash."""
    proxy.start_refusing()
    try:
        platform.kill(name)
        platform.start_one(BY_NAME[name])
        time.sleep(6)
        if platform.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited while the broker was unreachable; see its log")
    finally:
        proxy.stop_refusing()
    platform.wait_until_ready(BY_NAME[name], timeout=90)


def kill_during_broker_outage(platform: Platform, broker: TestBroker, name: str) -> None:
    """Two faults at once: the broker goes down, and while it is down a service dies mid-work (SIGKILL, so
    whatever it held unacknowledged or uncommitted is cut off). The broker comes back first, then the service;
    what the dead process was doing must be redone exactly once."""
    broker.stop()
    try:
        time.sleep(3)  # not a wait for an outcome: the service is left to be mid-reconnect when it dies
        platform.kill(name)
    finally:
        broker.start()
    restart(platform, name)


def duplicate_and_reorder(amqp_uri: str, subscriber: Subscriber) -> int:
    """Publish every certificate.issued event seen so far again, twice, newest first."""
    envelopes = list(subscriber.envelopes.values())[::-1]
    exchange: Exchange = event_exchange("certificates")
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=exchange)
        for envelope in envelopes + envelopes:
            producer.publish(json.dumps(envelope), routing_key=ISSUED, content_type="application/json",
                             content_encoding="utf-8", delivery_mode=2)
    return 2 * len(envelopes)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging
    import tempfile

    parser = argparse.ArgumentParser(description="The fault suite (see the module's docstring).")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--only", metavar="TEXT", help="strike only the faults whose name contains TEXT")
    parser.add_argument("--rounds", type=int, default=None,
                        help="strike the faults this many times (default 1; 3 with --standby)")
    parser.add_argument("--standby", action="store_true",
                        help="PostgreSQL: a primary and a synchronous standby of the suite's own, failed over "
                             "during the journeys (tests/faults/standby.py) instead of the other faults")
    parser.add_argument("--cluster", action="store_true",
                        help="a three-node RabbitMQ cluster and its faults instead (tests/faults/cluster.py)")
    args = parser.parse_args(argv)
    if args.standby and args.backend != "postgresql":
        parser.error("--standby needs --backend postgresql")
    rounds = args.rounds or (3 if args.standby else 1)
    logging.basicConfig(level=logging.ERROR)  # reconnecting clients chatter while the broker is away
    if not rabbitmq_available():
        print(f"fault suite: no rabbitmq-server on this machine (looked at {where_looked()})")
        return 2
    label = args.backend + ("-standby" if args.standby else "") + ("-cluster" if args.cluster else "")
    workdir = Path(tempfile.mkdtemp(prefix=f"credence-faults-{label}-"))
    standby = ReplicatedPostgres() if args.standby else None
    outcome = 1
    try:
        if standby is not None:
            standby.start()
        platform, broker, proxy, database_proxy, databases = rig(workdir, args.backend, standby, args.cluster)
    except BaseException:
        if standby is not None:
            standby.close(keep=True)
        raise
    try:
        platform.migrate()
        platform.start()
        outcome = run_faults(platform, broker, proxy, database_proxy, databases, label, args.only, rounds, standby,
                             cluster=broker if args.cluster else None)
        return outcome
    finally:
        platform.stop()
        proxy.close()
        broker.stop()
        if standby is not None:
            standby.close(keep=outcome != 0)
            if outcome != 0:
                print(f"kept for inspection: {workdir} and {standby.root}")
        if database_proxy is not None:
            database_proxy.close()
            if outcome == 0:
                drop_databases(databases)
            else:  # kept for the post-mortem, with the logs in the work directory
                print(f"kept for inspection: {workdir} and databases {sorted(databases.values())}")


def stall_report(platform: Platform, journeys: Journeys, report: str) -> None:
    """For the post-mortem of a stall: every process logs its green threads' stacks (SIGUSR1,
    credence_common/runtime/runner.py), and the report and the journeys' failures so far go to the log directory."""
    import signal

    for process in platform.processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGUSR1)
    failures = "\n".join(journeys.failed)
    (platform.log_dir / "stall.txt").write_text(f"{report}\n\njourneys failed so far:\n{failures}\n")
    print(f"stall: see {platform.log_dir}/stall.txt and the processes' logs (their stacks)", flush=True)
    time.sleep(3)  # lets the processes write their stacks before the platform is stopped


def run_faults(platform: Platform, broker, proxy, database_proxy: FaultProxy | None,
               dbs: dict[str, str], backend: str, only: str | None = None, rounds: int = 1,
               standby: ReplicatedPostgres | None = None, cluster: TestCluster | None = None) -> int:
    # in a cluster the downstream queue is a quorum queue too, or it would live (and die) on one node
    subscriber = Subscriber(broker.amqp_uri, {"x-queue-type": "quorum"} if cluster else None)
    subscriber.start()
    callers = CallerView()
    if standby is not None:
        callers.install()  # what the journeys saw at each failover
    journeys = Journeys(platform.gateway_url)
    journeys.start()
    faults: list[tuple[str, float]] = []

    plan: list[tuple[str, object]] = []
    for service in (*SERVICE_NAMES, "gateway"):
        plan.append((f"SIGKILL {service}, restart", lambda s=service: (platform.kill(s), restart(platform, s))))
    for service in SERVICE_NAMES:  # every service scaled out under load, its second instance then stopped
        plan.append((f"second {service} instance for 8 s", lambda s=service: second_instance(platform, s, 8)))
    if cluster is None:
        plan += [("broker restart", broker.restart),
                 ("broker link dropped", proxy.drop),
                 ("broker link stalled 5 s", lambda: proxy.stall(5)),
                 ("payments restarted while the broker is unreachable",
                  lambda: start_while_broker_unreachable(platform, proxy, "payments")),
                 ("certificates SIGKILLed during a broker outage",
                  lambda: kill_during_broker_outage(platform, broker, "certificates"))]
    if database_proxy is not None:
        plan.append(("PostgreSQL refuses connections for 5 s", lambda: database_proxy.refuse(5)))
    notes: list[str] = []
    if cluster is not None:  # the cluster's faults instead of the single broker's (the service faults run there)
        notes.append(replicated_everywhere(cluster))
        plan = cluster_plan(cluster, proxy, notes, lambda: len(journeys.completed),
                            on_stall=lambda report: stall_report(platform, journeys, report))
    plan.append(("certificate events twice, out of order", lambda: duplicate_and_reorder(broker.amqp_uri, subscriber)))
    if standby is not None:
        plan = failover_plan(standby)
    plan = [(name, action) for name, action in plan if not only or only in name]
    if not plan:
        raise SystemExit(f"no fault's name contains {only!r}")

    time.sleep(8)
    for _round in range(rounds):
        for name, action in plan:
            began = time.monotonic()
            action()
            faults.append((name, time.monotonic() - began))
            time.sleep(4)  # journeys make progress between faults
    time.sleep(6)
    journeys.stop()

    def paid_certificates() -> set[str]:
        return {r[0] for r in rows(dbs["payments"], "SELECT reference_id FROM payment_dues WHERE purpose = "
                                                    "'certificate_fee' AND status = 'paid'")}

    def issued() -> dict[str, str]:
        return dict(rows(dbs["certificates"], "SELECT certificate_id, certificate_number FROM certificates "
                                              "WHERE status = 'issued'"))

    def awaiting_payment() -> set[str]:
        return {r[0] for r in rows(dbs["certificates"], "SELECT certificate_id FROM certificates WHERE status IN "
                                                        "('awaiting_candidate_payment', "
                                                        "'awaiting_institution_payment')")}

    def fee_dues() -> set[str]:
        return {r[0] for r in rows(dbs["payments"], "SELECT reference_id FROM payment_dues WHERE purpose = "
                                                    "'certificate_fee'")}

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # let every event settle
        done = issued()
        verified = {r[0] for r in rows(dbs["verification"], "SELECT certificate_number FROM verifiable_certificates")}
        if paid_certificates() <= set(done) and set(done.values()) <= verified \
                and set(done) <= {c for _e, c in subscriber.deliveries} and awaiting_payment() <= fee_dues():
            break
        time.sleep(1)
    subscriber.stopping = True

    paid, done = paid_certificates(), issued()
    verified = {r[0] for r in rows(dbs["verification"], "SELECT certificate_number FROM verifiable_certificates")}
    received = {c for _e, c in subscriber.deliveries}
    issue_events_per_certificate = Counter(c for _e, c in set(subscriber.deliveries))
    credits_per_order = Counter(r[0] for r in rows(dbs["payments"], "SELECT order_number FROM provider_payments"))
    certificates_per_result = Counter(r[0] for r in rows(dbs["certificates"], "SELECT candidate_id || '/' || "
                                                                              "program_code FROM certificates"))
    unbilled = awaiting_payment() - fee_dues()
    lost = {
        "certificates awaiting payment that payments has no due for": len(unbilled),
        "payments without their certificate": len(paid - set(done)),
        "certificates issued without a payment": len(set(done) - paid),
        "certificates verification does not know": len(set(done.values()) - verified),
        "certificate.issued events the subscriber never got": len(set(done) - received),
        "completed journeys without an issued certificate": sum(
            j["certificate"]["certificate_id"] not in done for j in journeys.completed),
    }
    duplicated = {
        "orders credited twice": sum(n > 1 for n in credits_per_order.values()),
        "certificates per candidate and program > 1": sum(n > 1 for n in certificates_per_result.values()),
        "certificates issued by two different events": sum(n > 1 for n in issue_events_per_certificate.values()),
    }
    internal_errors = sum(log.read_text(errors="replace").count("unexpected failure")
                          for log in platform.log_dir.glob("gateway*.log"))
    report = [f"fault suite on {backend}", f"{'fault':<52} seconds"]
    report += [f"{name:<52} {seconds:6.1f}" for name, seconds in faults]
    report += ["", *notes, f"journeys started {journeys.started}, completed {len(journeys.completed)}, "
                   f"failed {len(journeys.failed)}",
               f"payments credited {len(credits_per_order)}, certificates issued {len(done)}, "
               f"issued events received {len(subscriber.deliveries)} ({len(received)} certificates)",
               f"lost = {sum(lost.values())}   duplicated = {sum(duplicated.values())}   "
               f"answers 500 = {internal_errors}"]
    report += [f"  {what}: {count}" for what, count in {**lost, **duplicated}.items() if count]
    report += [f"  failed journey: {reason}" for reason in journeys.failed[:10]]
    if sum(lost.values()):  # for the post-mortem: which ones, and where their messages are
        report += [f"  unbilled certificate: {c}" for c in sorted(unbilled)[:5]]
        report += [f"  paid, not issued: {c}" for c in sorted(paid - set(done))[:5]]
        report += ["  queues (name, type, ready, unacknowledged, consumers):"]
        report += [f"    {line}" for line in broker.queues()]
    if standby is not None:
        report += callers.report(standby)
    enough = len(journeys.completed) >= 5  # the faults did not simply stop all work
    report.append("PASSED" if not sum(lost.values()) and not sum(duplicated.values()) and enough
                  and not internal_errors else
                  "FAILED" + ("" if enough else f": only {len(journeys.completed)} journeys completed"))
    text = "\n".join(report) + "\n"
    print(text, end="")
    target = Path(os.environ.get("FAULT_SUITE_REPORT", f"var/fault-suite-{backend}.txt"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return 0 if report[-1] == "PASSED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
