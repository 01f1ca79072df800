"""Where a lone public check's time goes, hop by hop (issue #18's breakdown), on PostgreSQL or SQLite.

Starts its own platform (a throw-away RabbitMQ vhost, fresh databases, free ports, the settings of
``bench/public_check.py``), issues one certificate through the demo journey, then measures one caller at a time,
each hop for ``--seconds`` after a short warm-up, from an empty check log (``empty_check_log``):

  gateway GET /health                      the HTTP layer alone (no RPC)
  verification.health over the bus        a standalone nameko proxy -> RabbitMQ -> verification, no database
  verification.public_checks over the bus the same, plus verification's database work for one check
  whole check through the gateway          POST /api/v1/certificate-checks: HTTP, the bus, the database
  verification's database work alone       ``usecases.public_checks`` for one check in one transaction, in
                                           this process on ``make_engine`` (the services' driver), no bus
  three statements + commit, Core          the certificate look-up, the failure count, the log insert and
                                           the commit as SQLAlchemy Core text, on the same engine

During the whole-check hop it also reads each process's CPU time (``/proc``): the platform's, RabbitMQ's and
PostgreSQL's, per check, a second table.

The last two run in this process, which is not green (no eventlet), so they show the driver's own cost; then both
again in a child process made green as a service process is (``eventlet.monkey_patch`` and, where the tree has it,
``credence_common.persistence.green_postgres.patch_psycopg``): what verification's worker pays for its database, bus
aside.
Prints a table (p50, p90, p99 in ms, and the count); asserts nothing.

    .venv/bin/python -m bench.hops --backend postgresql [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import time

import requests

from bench.public_check import bench_platform, percentile
from deploy.journey import run_journey
from deploy.platform import quiet_client_logging

WARM_UP_SECONDS = 1.0


def empty_check_log(db_uri: str) -> None:
    """Every hop repeats one certificate number, so the per-number count of recent checks reads more rows the
    longer a run goes on: each hop starts from an empty check log, so that the order of the hops does not matter."""
    from sqlalchemy import text

    from credence_common.persistence.db import make_engine

    engine = make_engine(db_uri)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM check_log"))
    engine.dispose()


def sample(seconds: float, call, db_uri: str | None = None) -> list[float]:
    if db_uri:
        empty_check_log(db_uri)
    deadline = time.perf_counter() + WARM_UP_SECONDS
    while time.perf_counter() < deadline:
        call()
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far (``/proc/<pid>/stat``; a process gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def cpu_holders(platform) -> dict[str, list[int]]:
    """The processes a check passes through: the platform's own, the broker's Erlang VM, PostgreSQL's
    processes (its backends and the WAL writer alike)."""
    import subprocess

    def pgrep(name: str) -> list[int]:
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    holders = {name: [process.pid] for name, process in platform.processes.items()}
    holders["rabbitmq (beam.smp)"] = pgrep("beam.smp")
    holders["postgresql (every process)"] = pgrep("postgres")
    return holders


def row(label: str, latencies: list[float]) -> str:
    return (f"| {label} | {percentile(latencies, 0.5):.2f} | {percentile(latencies, 0.9):.2f} | "
            f"{percentile(latencies, 0.99):.2f} | {len(latencies):,} |")


def database_hops(db_uri: str, check: dict, seconds: float) -> list[tuple[str, list[float]]]:
    from sqlalchemy import text

    from credence_common.contracts.certificate_numbers import normalise_certificate_number
    from credence_common.contracts.envelope import utcnow
    from credence_common.contracts.verification import PublicCheck
    from credence_common.persistence.db import make_engine
    from services.verification import usecases

    engine = make_engine(db_uri)
    request = PublicCheck(**check)

    def usecase():
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # as the service
            answer = usecases.public_checks(connection, [(request, "bench-hops")], 20)[0]
        assert getattr(answer, "result", None) == "valid", answer

    number = normalise_certificate_number(check["certificate_number"])
    look_up = text("SELECT holder_name_key, status FROM verifiable_certificates WHERE certificate_number = :n")
    failures = text("SELECT count(*) FROM check_log WHERE certificate_number = :n AND checked_at > :since "
                    "AND outcome IN ('no_match', 'rate_limited')")
    log = text("INSERT INTO check_log (checked_at, certificate_number, outcome, client) "
               "VALUES (:at, :n, 'valid', 'bench-hops')")

    def core():
        now = utcnow()
        with engine.begin() as connection:
            assert connection.execute(look_up, {"n": number}).first() is not None
            connection.execute(failures, {"n": number, "since": now}).scalar()
            connection.execute(log, {"at": now, "n": number})

    try:
        return [(f"verification's database work alone ({engine.dialect.driver}, this process)",
                 sample(seconds, usecase, db_uri)),
                (f"three statements + commit, SQLAlchemy Core ({engine.dialect.driver}, this process)",
                 sample(seconds, core, db_uri))]
    finally:
        engine.dispose()


GREEN_CHILD = """
import eventlet
eventlet.monkey_patch()
try:  # as credence_common/runtime/runner.py does in every service process (a tree without it ran pg8000, green by
itself)
    from credence_common.persistence.green_postgres import patch_psycopg
    patch_psycopg()
except ImportError:
    pass
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("hops", sys.argv[4])  # this file, wherever it was run from
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
hops = module.database_hops(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]))
print(json.dumps([[label.replace("this process", "green, as in a service"), latencies] for label, latencies in hops]))
"""


def green_database_hops(db_uri: str, check: dict, seconds: float) -> list[tuple[str, list[float]]]:
    """``database_hops`` in a child process that is green as a service process is (eventlet's monkey-patching and
    the driver's wait callback): what verification's worker pays, bus aside."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", GREEN_CHILD, db_uri, json.dumps(check), str(seconds), __file__],
                         capture_output=True, text=True, check=True).stdout
    return [(label, latencies) for label, latencies in json.loads(out.splitlines()[-1])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each hop's measurement")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    quiet_client_logging()

    with bench_platform(args.backend, prefix="credence-hops-") as (platform, env, workdir):
        journey = run_journey(platform.gateway_url, say=lambda _line: None)
        check = {"holder_name": journey["full_name"],
                 "certificate_number": journey["certificate"]["certificate_number"]}
        session = requests.Session()
        health_url = platform.gateway_url + "/health"
        check_url = platform.gateway_url + "/api/v1/certificate-checks"
        db_uri = env["VERIFICATION_DB_URI"]

        def whole_check():
            answer = session.post(check_url, json=check, timeout=10)
            assert answer.status_code == 200 and answer.json()["result"] == "valid", answer.text

        from nameko.standalone.rpc import ServiceRpcProxy

        hops = [("gateway GET /health", sample(args.seconds, lambda: session.get(health_url, timeout=10)))]
        with ServiceRpcProxy("verification", {"AMQP_URI": env["AMQP_URI"]}, timeout=10) as verification:
            hops.append(("verification.health over the bus (standalone proxy)",
                         sample(args.seconds, verification.health)))
            batch = [{"request": check, "client": "bench-hops"}]
            assert "answer" in verification.public_checks(batch)[0]
            hops.append(("verification.public_checks over the bus (standalone proxy)",
                         sample(args.seconds, lambda: verification.public_checks(batch), db_uri)))
        processes = cpu_holders(platform)
        before = {name: cpu_seconds(pids) for name, pids in processes.items()}
        whole = sample(args.seconds, whole_check, db_uri)
        cpu = {name: (cpu_seconds(pids) - before[name]) / len(whole) for name, pids in processes.items()}
        hops.append(("whole check through the gateway (POST /api/v1/certificate-checks)", whole))
        hops += database_hops(db_uri, check, args.seconds)
        hops += green_database_hops(db_uri, check, args.seconds)
        print(f"\nA lone public check, hop by hop ({args.backend}, one caller, {args.seconds:g} s per hop after a "
              f"{WARM_UP_SECONDS:g} s warm-up, {os.cpu_count()} cores, loopback):\n")
        print("| hop | p50 ms | p90 ms | p99 ms | n |\n|---|---:|---:|---:|---:|")
        for label, latencies in hops:
            print(row(label, latencies))
        print("\nCPU per whole check, by process (user + system time over the whole-check hop / its checks; a lone "
              "check waits for each of them in turn, so their sum is about its latency):\n")
        print("| process | CPU ms per check |\n|---|---:|")
        for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
            print(f"| {name} | {seconds * 1000:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
