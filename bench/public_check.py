"""Benchmark the public check, the platform's hottest read path.

Starts its own platform (SQLite, or PostgreSQL with --backend postgresql; a throw-away RabbitMQ vhost, free
ports), issues one certificate via the demo journey, then measures, in the same run:
  1. the verification service over nameko RPC, sequential (the service's own cost plus one hop);
  2. the same check over HTTP through the gateway, sequential and with concurrent clients;
  3. baseline: a single-process threaded WSGI app doing the same lookup straight from verification's
     database (bench/baselines.py), with the same concurrent clients;
  4. baseline: a raw RabbitMQ RPC round trip (pika, direct reply-to), sequential and concurrent;
  5. freshness: staff revoke the certificate, and the gateway is asked until it answers "revoked".
  6. (PostgreSQL) the honest baseline (bench/honest.py): 100,000 certificates seeded into verification's read
     model, wrk with keep-alive posting a random mix of (name, number) pairs, Credence against gunicorn
     (gthread) + psycopg2 doing verification's work per check, with one worker and with one per core; the old
     wsgiref baseline as a labelled reference. One table, with the ratios.
Prints requests per second, latency percentiles and the ratios to the baselines. The per-address limit is off
(``PUBLIC_RATE_LIMIT_PER_MINUTE`` high), the per-number limit as in production (verification's default).

    make bench            # or: .venv/bin/python -m bench.public_check --seconds 5 --clients 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.load import post_json, wrk_available
from deploy.journey import run_journey
from deploy.platform import Platform, free_port, quiet_client_logging
from deploy.processes import DEFAULT_GATEWAY_SERVER, GATEWAY_SERVERS, PROCESSES, SERVICE_NAMES

MANAGEMENT = os.environ.get("RABBIT_CTL_URI", "http://guest:guest@127.0.0.1:15672").rstrip("/")


def create_vhost() -> str:
    """A throw-away RabbitMQ vhost for one benchmark run (deleted at its end with ``delete_vhost``)."""
    vhost = f"credence_bench_{uuid.uuid4().hex[:8]}"
    requests.put(f"{MANAGEMENT}/api/vhosts/{vhost}", timeout=10).raise_for_status()
    requests.put(f"{MANAGEMENT}/api/permissions/{vhost}/guest", timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return vhost


def delete_vhost(vhost: str) -> None:
    requests.delete(f"{MANAGEMENT}/api/vhosts/{vhost}", timeout=10)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def report(label: str, latencies: list[float], elapsed: float) -> float:
    rate = len(latencies) / elapsed
    print(f"{label:<44} {rate:>8.0f} req/s   p50 {percentile(latencies, 0.5):6.1f} ms   "
          f"p99 {percentile(latencies, 0.99):6.1f} ms   n={len(latencies)}")
    return rate


def run_for(seconds: float, call) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def concurrent(seconds: float, clients: int, make_call) -> tuple[list[float], float]:
    results: list[list[float]] = [[] for _ in range(clients)]

    def worker(index):
        call = make_call()
        results[index], _ = run_for(seconds, call)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for r in results for x in r], time.perf_counter() - started


def http_load(label: str, url: str, check: dict, args, workdir: Path) -> tuple[float, float]:
    """Concurrent HTTP clients from wrk (a separate C process), or Python threads if wrk is missing.
    Returns (requests/s, p99 ms)."""
    if wrk_available():
        result = post_json(url, check, args.seconds, args.clients, workdir)
        print(f"{label:<44} {result.requests_per_second:>8.0f} req/s   p50 {result.p50_ms:6.1f} ms   "
              f"p99 {result.p99_ms:6.1f} ms   n={result.requests}"
              + (f"   ERRORS {result.errors}" if result.errors else ""))
        return result.requests_per_second, result.p99_ms

    def client():
        session = requests.Session()
        return lambda: session.post(url, json=check, timeout=10).raise_for_status()

    latencies, elapsed = concurrent(args.seconds, args.clients, client)
    return report(label + " (python clients)", latencies, elapsed), percentile(latencies, 0.99)


def baselines(args, env, workdir: Path, check: dict) -> tuple[float, float]:
    import subprocess
    import sys

    from bench.baselines import EchoClient

    port = free_port()
    wsgi = subprocess.Popen([sys.executable, "-m", "bench.baselines", "wsgi", str(port),
                             env["VERIFICATION_DB_URI"]], stdout=subprocess.PIPE, text=True)
    queue = f"bench-echo-{uuid.uuid4().hex[:8]}"
    amqp = env["AMQP_URI"].replace("pyamqp://", "amqp://", 1)
    echo = subprocess.Popen([sys.executable, "-m", "bench.baselines", "echo", amqp, queue], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert wsgi.stdout.readline().strip() == "ready" and echo.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}/"

        def wsgi_client():
            session = requests.Session()
            return lambda: session.post(url, json=check, timeout=10).raise_for_status()

        report("baseline: one-process WSGI + DB, sequential", *run_for(args.seconds, wsgi_client()))
        wsgi_rate, _ = http_load(f"baseline: one-process WSGI + DB, {args.clients} clients", url, check, args,
                                 workdir)
        client = EchoClient(amqp, queue)
        report("baseline: raw RabbitMQ RPC echo, sequential", *run_for(args.seconds, client.call))
        client.close()

        def echo_client():
            own = EchoClient(amqp, queue)
            return own.call

        echo_rate = report(f"baseline: raw RabbitMQ RPC echo, {args.clients} clients",
                           *concurrent(args.seconds, args.clients, echo_client))
        return wsgi_rate, echo_rate
    finally:
        wsgi.terminate()
        echo.terminate()


def freshness(platform, journey: dict, check: dict) -> None:
    """How long a revocation takes to become the public answer: certificates' transaction, the outbox relay,
    the broker, verification's consumer, then the next check."""
    certificate_id = journey["certificate"]["certificate_id"]
    session = requests.Session()
    staff = {"Authorization": f"Bearer {journey['staff_token']}"}
    url = platform.gateway_url + "/api/v1/certificate-checks"
    started = time.perf_counter()
    session.post(platform.gateway_url + f"/api/v1/certificates/{certificate_id}/revocation", headers=staff,
                 json={"reason": "benchmark"}, timeout=10).raise_for_status()
    revoked_at = time.perf_counter()
    while session.post(url, json=check, timeout=10).json().get("result") != "revoked":
        if time.perf_counter() - started > 30:
            print("freshness: the revocation did not reach the public answer within 30 s")
            return
    answered = time.perf_counter()
    print(f"freshness: revocation committed in {(revoked_at - started) * 1000:.0f} ms, public answer 'revoked' "
          f"{(answered - revoked_at) * 1000:.0f} ms later (aim < 1000 ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--certificates", type=int, default=100_000,
                        help="certificates seeded into verification's read model for the honest baseline")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn gthread threads per worker")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the services' databases (and the WSGI baseline's): SQLite files or PostgreSQL "
                             "databases created for the run on CREDENCE_BENCH_POSTGRES (default the local server)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="after the table, this many paired rounds (Credence on the last gateway measured, then "
                             "gunicorn 1 worker, back to back) and the median of their ratios")
    parser.add_argument("--gateway", choices=[*GATEWAY_SERVERS, "both"], default=DEFAULT_GATEWAY_SERVER,
                        help="the gateway's HTTP layer (GATEWAY_SERVER); both: the honest comparison is measured with "
                             "the nameko gateway, then again with the asgi one on the same platform and data")
    args = parser.parse_args()
    quiet_client_logging()

    with bench_platform(args.backend, GATEWAY_SERVER="nameko" if args.gateway == "both" else args.gateway) as (
            platform, env, workdir):
        journey = run_journey(platform.gateway_url, say=lambda _line: None)
        check = {"holder_name": journey["full_name"],
                 "certificate_number": journey["certificate"]["certificate_number"]}
        print(f"Public check benchmark ({args.seconds:.0f}s each, {args.backend}, loopback, "
              f"{os.cpu_count()} cores, gateway {env['GATEWAY_SERVER']})\n")

        from nameko.standalone.rpc import ServiceRpcProxy

        with ServiceRpcProxy("verification", {"AMQP_URI": env["AMQP_URI"]}, timeout=10) as verification:
            assert verification.public_check(check)["result"] == "valid"
            rpc_rate = report("verification RPC, sequential",
                              *run_for(args.seconds, lambda: verification.public_check(check)))

        url = platform.gateway_url + "/api/v1/certificate-checks"

        def http_client():
            session = requests.Session()
            return lambda: session.post(url, json=check, timeout=10).raise_for_status()

        http_rate = report("gateway HTTP -> RPC, sequential", *run_for(args.seconds, http_client()))
        parallel_rate, parallel_p99 = http_load(f"gateway HTTP -> RPC, {args.clients} clients", url, check, args,
                                                workdir)
        wsgi_rate, echo_rate = baselines(args, env, workdir, check)
        print(f"\nratio gateway/RPC sequential: {http_rate / rpc_rate:.2f}   "
              f"concurrency gain ({args.clients} clients / 1): {parallel_rate / http_rate:.2f}")
        print(f"ratio gateway / single-process WSGI baseline ({args.clients} clients): {parallel_rate / wsgi_rate:.2f}"
              f" (aim >= 1.00)")
        print(f"ratio gateway / raw RabbitMQ round trip ({args.clients} clients): {parallel_rate / echo_rate:.2f}")
        print(f"gateway p99 at {args.clients} clients: {parallel_p99:.1f} ms (aim < 50 ms)")
        honest_comparison(args, env, platform, workdir)
        freshness(platform, journey, check)
    return 0


PER_ADDRESS_LIMIT_OFF = 100_000_000  # checks a minute from one address: never reached by the load


def production_per_number_limit() -> int:
    """verification's own default for CHECKS_PER_NUMBER_PER_MINUTE (its config.yml), which the run keeps."""
    import re

    config = (Path(__file__).resolve().parent.parent / "services/verification/config.yml").read_text()
    return int(re.search(r"CHECKS_PER_NUMBER_PER_MINUTE:\s*\$\{CHECKS_PER_NUMBER_PER_MINUTE:(\d+)\}", config)[1])


def wait_for_http(url: str, body: dict, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.post(url, json=body, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def honest_comparison(args, env: dict, platform, workdir: Path) -> None:
    """Item 1 of issue #18: Credence against gunicorn + psycopg2 doing the same work, on a random mix of checks
    over ``args.certificates`` seeded certificates; prints one table with the ratios."""
    import subprocess
    import sys

    from sqlalchemy import text

    from bench import honest
    from credence_common.persistence.db import make_engine

    if args.backend != "postgresql":
        print("\nhonest baseline: skipped (gunicorn + psycopg2 needs --backend postgresql)")
        return
    if not wrk_available():
        print("\nhonest baseline: skipped (needs wrk: make bench-tools)")
        return
    db_uri = env["VERIFICATION_DB_URI"]
    started = time.perf_counter()
    honest.seed_certificates(db_uri, args.certificates, workdir)
    engine = make_engine(db_uri)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE verifiable_certificates"))
    mix = honest.Mix()
    checks = honest.check_mix(args.certificates, 100_000, mix=mix)
    bodies = honest.write_bodies(checks, workdir / "checks.jsonl")
    per_number = int(env.get("CHECKS_PER_NUMBER_PER_MINUTE") or production_per_number_limit())
    print(f"\nHonest baseline: {args.certificates:,} certificates seeded in {time.perf_counter() - started:.1f} s; "
          f"load: {mix.describe()} (100,000 bodies drawn, {checks.kinds}), each request a random one")

    def measure(label: str, url: str) -> honest.SystemResult:
        with engine.begin() as connection:  # every system starts from an empty check log
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text("TRUNCATE check_log"))
        honest.post_mix(url, bodies, 2, args.clients, workdir)  # warm-up: connections, caches
        loaded = honest.post_mix(url, bodies, args.seconds, args.clients, workdir)
        lone = honest.post_mix(url, bodies, args.seconds, 1, workdir)
        result = honest.SystemResult(label, loaded, lone)
        print(f"  {label:<70} {loaded.requests_per_second:>7.0f} req/s  p50 {loaded.p50_ms:6.1f}  "
              f"p99 {loaded.p99_ms:6.1f}  lone p50 {lone.p50_ms:5.2f} ms  [{loaded.answers()}]", flush=True)
        return result

    credences = [measure(f"Credence: {platform.gateway_server} gateway -> RPC -> verification",
                         platform.gateway_url + "/api/v1/certificate-checks")]
    if args.gateway == "both":
        switch_gateway(platform, "asgi")
        credences.append(measure("Credence: asgi gateway -> RPC -> verification",
                                 platform.gateway_url + "/api/v1/certificate-checks"))
    credence = credences[0]
    baselines = []
    for workers in (1, os.cpu_count() or 2):
        with honest.gunicorn("bench.baselines:honest_app()", dict(env, BENCH_DB_DSN=db_uri,
                             CHECKS_PER_NUMBER_PER_MINUTE=str(per_number)), workers, args.threads) as url:
            wait_for_http(url, checks.bodies[0])
            baselines.append(measure(honest.baseline_label(workers, args.threads), url))
    port = free_port()
    wsgi = subprocess.Popen([sys.executable, "-m", "bench.baselines", "wsgi", str(port), db_uri],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert wsgi.stdout.readline().strip() == "ready"
        reference = measure("reference (old): wsgiref threads + SQLAlchemy (psycopg2), HTTP/1.0, no log/limit",
                            f"http://127.0.0.1:{port}/")
    finally:
        wsgi.terminate()
        wsgi.wait(timeout=30)
    engine.dispose()
    print(f"\nPublic check against an honest baseline ({args.seconds:.0f} s per load, {args.clients} wrk connections "
          f"with keep-alive and 1 for the lone request, {args.certificates:,} certificates, per-number limit "
          f"{per_number}/min as in production, per-address limit off):\n")
    for credence in credences:
        print(honest.honest_table(credence, baselines, args.clients, [reference]))
        print(f"\n{credence.label}: ratio to gunicorn 1 worker ({args.clients} conns): "
              f"{credence.loaded.requests_per_second / baselines[0].loaded.requests_per_second:.2f}   "
              f"to gunicorn {os.cpu_count() or 2} workers: "
              f"{credence.loaded.requests_per_second / baselines[1].loaded.requests_per_second:.2f}   "
              f"lone-request p50 Credence / gunicorn 1 worker: {credence.lone.p50_ms / baselines[0].lone.p50_ms:.2f}"
              "\n")
    if args.rounds:
        def one_worker() -> honest.SystemResult:
            with honest.gunicorn("bench.baselines:honest_app()", dict(env, BENCH_DB_DSN=db_uri,
                                 CHECKS_PER_NUMBER_PER_MINUTE=str(per_number)), 1, args.threads) as url:
                wait_for_http(url, checks.bodies[0])
                return measure(honest.baseline_label(1, args.threads), url)

        print(f"Paired rounds, Credence ({platform.gateway_server} gateway) then gunicorn 1 worker:")
        honest.paired_rounds(args.rounds, lambda: measure(
            f"Credence: {platform.gateway_server} gateway -> RPC -> verification",
            platform.gateway_url + "/api/v1/certificate-checks"), one_worker)


def switch_gateway(platform, server: str) -> None:
    """Stops the running gateway (SIGTERM, as make run stops it) and starts the other HTTP layer on the same port,
    against the same services and data."""
    from deploy.processes import BY_NAME

    process = platform.processes.pop("gateway")
    process.terminate()
    process.wait(timeout=30)
    platform.env["GATEWAY_SERVER"] = server
    platform.start_one(BY_NAME["gateway"])
    platform.wait_until_ready(BY_NAME["gateway"])


POSTGRES_ADMIN_URI = os.environ.get("CREDENCE_BENCH_POSTGRES",
                                    os.environ.get("CREDENCE_TEST_POSTGRES",
                                                   "postgresql://postgres@127.0.0.1:5432/postgres"))


def create_databases(backend: str, workdir: Path, env: dict) -> list[str]:
    """Point each service at its database; PostgreSQL ones are created here and dropped at the end."""
    if backend == "sqlite":
        for service in SERVICE_NAMES:
            env[f"{service.upper()}_DB_URI"] = f"sqlite:///{workdir / service}.sqlite"
        return []
    from sqlalchemy import create_engine, text

    from credence_common.persistence.db import normalise_db_uri

    admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
    names = []
    with admin.connect() as connection:
        for service in SERVICE_NAMES:
            name = f"credence_bench_{service}_{uuid.uuid4().hex[:8]}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            names.append(name)
            env[f"{service.upper()}_DB_URI"] = POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
    admin.dispose()
    return names


@contextmanager
def bench_platform(backend: str = "postgresql", prefix: str = "credence-bench-",
                   **settings: str) -> Iterator[tuple[Platform, dict, Path]]:
    """The whole platform as ``make run`` starts it, for one benchmark: a throw-away vhost, databases created for
    the run and dropped after it, free ports, the per-address limit off (every request comes from 127.0.0.1),
    ``LOG_LEVEL=WARNING``, ``OUTBOX_POLL_INTERVAL=0.2``; ``settings`` add to or override that environment.
    Yields (platform, its environment, a work directory)."""
    vhost = create_vhost()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ, CREDENCE_ENV="development", AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}", PUBLIC_RATE_LIMIT_PER_MINUTE=str(PER_ADDRESS_LIMIT_OFF),
               OUTBOX_POLL_INTERVAL="0.2", LOG_LEVEL="WARNING", **settings)
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    databases = create_databases(backend, workdir, env)
    platform = Platform(env, workdir / "log")
    try:
        platform.migrate()
        platform.start()
        yield platform, env, workdir
    finally:
        platform.stop()
        delete_vhost(vhost)
        drop_databases(databases)


def drop_databases(names: list[str]) -> None:
    if not names:
        return
    from sqlalchemy import create_engine, text

    from credence_common.persistence.db import normalise_db_uri

    admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
