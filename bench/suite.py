"""``make bench``: every hot path against its baseline, measured in one run, on PostgreSQL.

Starts the whole platform as ``make run`` does (PostgreSQL databases created for the run, a throw-away RabbitMQ
vhost, free ports), then, one scenario after another:

  public check      POST /api/v1/certificate-checks, random pairs over  vs gunicorn (one gthread worker) + psycopg2
                    100,000 seeded certificates, 32 clients and 1 (wrk)  doing the same work (bench/honest.py)
  result reading    GET /api/v1/me/results, a random candidate's token   vs gunicorn + psycopg2 checking the same
                    each time, 64 clients and 1 (wrk)                    token, running the same query
                                                                         (bench/honest_reads.py)
  journeys          whole candidate journeys through the gateway,       (no baseline: the figure is the figure;
                    a few at a time                                      each step's p50 and p99 below the table)
  scale             the first two loads again with a second verification and a second scoring instance, and
                    how the calls divided between the instances (from each one's metrics)
  issuance          N certificates paid, issued, their events delivered  vs raw pika publishing of N messages with
                    to a subscriber                                      confirms
  import            N course results imported (bench/result_import.py)   vs PostgreSQL COPY of the same rows

and prints one table (throughput, p50, p99, baseline, ratio, target) and the peak memory of every process.
The table also goes to ``var/bench-latest.md``; ``docs/performance.md`` keeps the one of record. Load comes
from other processes (wrk, pika clients); nothing here asserts a time.

    make bench                                  # the full run (about 15 minutes)
    .venv/bin/python -m bench.suite --quick     # smaller sizes and shorter loads (about 3 minutes)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import honest, honest_reads, issuance, result_reading
from bench.load import post_json, wrk_available
from bench.public_check import (
    concurrent,
    create_databases,
    create_vhost,
    delete_vhost,
    drop_databases,
    percentile,
    production_per_number_limit,
)
from deploy.journey import run_journey
from deploy.platform import Platform, free_port, quiet_client_logging
from deploy.processes import DEFAULT_GATEWAY_SERVER, GATEWAY_SERVERS, PROCESSES

JWT_SECRET = "bench-jwt-secret-" + "x" * 32


@dataclass
class Row:
    scenario: str
    throughput: float
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline: str = ""
    baseline_throughput: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    detail: str = ""  # a table of its own under the main one (the journey's steps)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_throughput:
            return None
        return self.throughput / self.baseline_throughput


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(rows: list[Row], memory: dict[str, float]) -> str:
    lines = ["| scenario | throughput | p50 ms | p99 ms | baseline | baseline throughput | ratio | target | met |",
             "|---|---:|---:|---:|---|---:|---:|---|---|"]
    for row in rows:
        digits = 1 if row.throughput < 100 else 0  # journeys per second are few
        lines.append(f"| {row.scenario} | {_fmt(row.throughput, digits)} {row.unit} | {_fmt(row.p50_ms, 1)} | "
                     f"{_fmt(row.p99_ms, 1)} | {row.baseline or '-'} | "
                     f"{_fmt(row.baseline_throughput)}{' ' + row.unit if row.baseline_throughput else ''} | "
                     f"{_fmt(row.ratio, 2)} | {row.target or '-'} | "
                     f"{'-' if row.met is None else ('yes' if row.met else 'NO')} |")
    notes = [f"- {row.scenario}: {row.note}" for row in rows if row.note]
    notes += [line for row in rows if row.detail for line in ["", row.detail]]
    memory_line = ", ".join(f"{name} {mb:.0f}" for name, mb in memory.items())
    return "\n".join(lines + [""] + notes + ["", f"Peak memory (MB, VmHWM): {memory_line}"]) + "\n"


def machine_speed() -> float:
    """Seconds for ten million iterations of a Python loop: the same code ran twice as fast on this machine on
    some days as on others, so every table says how fast the machine was that day."""
    began = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - began


def peak_memory_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def start_baseline(*arguments: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "bench.baselines", *arguments], stdout=subprocess.PIPE,
                               text=True)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"baseline {arguments[0]} did not start")
    return process


def echo_rate(amqp_uri: str, clients: int, seconds: float) -> tuple[float, float, float]:
    """The raw RabbitMQ round trip (pika, direct reply-to) with ``clients`` concurrent callers."""
    from bench.baselines import EchoClient

    queue = f"bench-echo-{uuid.uuid4().hex[:8]}"
    amqp = amqp_uri.replace("pyamqp://", "amqp://", 1)
    echo = start_baseline("echo", amqp, queue)
    try:
        latencies, elapsed = concurrent(seconds, clients, lambda: EchoClient(amqp, queue).call)
        return len(latencies) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)
    finally:
        echo.terminate()


def _mix_loads(url: str, bodies: Path, args, clients: int, workdir: Path) -> honest.SystemResult:
    """A warm-up, then ``clients`` keep-alive connections and one, each request a random body."""
    honest.post_mix(url, bodies, 2, clients, workdir)
    return honest.SystemResult(url, honest.post_mix(url, bodies, args.seconds, clients, workdir),
                               honest.post_mix(url, bodies, args.seconds, 1, workdir))


def _token_loads(url: str, tokens: Path, args, clients: int, workdir: Path) -> honest.SystemResult:
    honest_reads.get_random_tokens(url, tokens, 2, clients, workdir)
    return honest.SystemResult(url, honest_reads.get_random_tokens(url, tokens, args.seconds, clients, workdir),
                               honest_reads.get_random_tokens(url, tokens, args.seconds, 1, workdir))


def _against_baseline(scenario: str, credence: honest.SystemResult, baseline: honest.SystemResult, clients: int,
                      p99_limit_ms: float, lone_factor: float | None, echo: float) -> Row:
    """A row of the table: Credence against the one-process honest baseline, the issue's targets."""
    c, b = credence, baseline
    lone_ratio = c.lone.p50_ms / b.lone.p50_ms if b.lone.p50_ms else float("inf")
    met = (c.loaded.requests_per_second >= b.loaded.requests_per_second and c.loaded.p99_ms < p99_limit_ms
           and not c.loaded.socket_errors and (lone_factor is None or lone_ratio <= lone_factor))
    target = f">= 1.0 x baseline, p99 < {p99_limit_ms:.0f} ms" + (
        f", lone p50 <= {lone_factor:.0f} x baseline's" if lone_factor else "")
    return Row(scenario, c.loaded.requests_per_second, "req/s", c.loaded.p50_ms, c.loaded.p99_ms,
               honest.baseline_label(1), b.loaded.requests_per_second, target, met,
               f"lone request p50 {c.lone.p50_ms:.2f} ms against {b.lone.p50_ms:.2f} ms ({lone_ratio:.1f} x); "
               f"baseline p99 {b.loaded.p99_ms:.1f} ms; answers {c.loaded.answers()} (baseline "
               f"{b.loaded.answers()}); raw pika RPC echo at {clients} clients {echo:,.0f} calls/s"
               + (f"; {c.loaded.socket_errors} socket errors" if c.loaded.socket_errors else ""))


def public_check(platform: Platform, env: dict, args, workdir: Path, echo: float) -> Row:
    """Random (holder name, number) pairs over ``args.checked_certificates`` seeded certificates (bench/honest.py),
    against gunicorn + psycopg2 doing the same work; each system starts from an empty check log."""
    from sqlalchemy import text

    from credence_common.persistence.db import make_engine

    db_uri = env["VERIFICATION_DB_URI"]
    honest.seed_certificates(db_uri, args.checked_certificates, workdir)
    engine = make_engine(db_uri)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE verifiable_certificates"))
    bodies = honest.write_bodies(honest.check_mix(args.checked_certificates, 100_000), workdir / "checks.jsonl")

    def empty_check_log() -> None:
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE check_log"))

    try:
        empty_check_log()
        credence = _mix_loads(platform.gateway_url + "/api/v1/certificate-checks", bodies, args, 32, workdir)
        empty_check_log()
        with honest.gunicorn("bench.baselines:honest_app()", dict(
                env, BENCH_DB_DSN=db_uri, CHECKS_PER_NUMBER_PER_MINUTE=str(production_per_number_limit())), 1) as url:
            baseline = _mix_loads(url, bodies, args, 32, workdir)
    finally:
        engine.dispose()
    return _against_baseline(f"public check, {args.checked_certificates:,} certificates, 32 clients", credence,
                             baseline, 32, 50, 3, echo)


def result_reads(platform: Platform, env: dict, args, workdir: Path) -> Row:
    """Each request a random candidate's token (four published results each), against gunicorn + psycopg2 checking
    the same token and running the same query (bench/honest_reads.py)."""
    result_reading.seed_results(env["SCORING_DB_URI"], args.candidates, workdir)
    tokens = result_reading.write_tokens(JWT_SECRET, args.candidates, workdir / "tokens.txt")
    first = tokens.read_text().split("\n", 1)[0]
    answer = requests.get(platform.gateway_url + "/api/v1/me/results", headers={"Authorization": f"Bearer {first}"},
                          timeout=10)
    answer.raise_for_status()
    assert len(answer.json()["results"]) == len(result_reading.COURSES), answer.text
    credence = _token_loads(platform.gateway_url + "/api/v1/me/results", tokens, args, 64, workdir)
    with honest.gunicorn("bench.honest_reads:honest_results_app()",
                         dict(env, BENCH_DB_DSN=env["SCORING_DB_URI"], JWT_SECRET=JWT_SECRET), 1) as url:
        baseline = _token_loads(url, tokens, args, 64, workdir)
    echo, _p50, _p99 = echo_rate(env["AMQP_URI"], 64, args.seconds)
    return _against_baseline(f"result reading, {args.candidates:,} candidates, 64 clients", credence, baseline, 64,
                             100, None, echo)


def journeys(platform: Platform, args) -> Row:
    """Whole journeys (register, confirm, results, certificate, pay, verify) by ``args.journey_clients`` at once."""
    durations: list[float] = []
    failures: list[str] = []
    steps: dict[str, list[float]] = {}  # step -> its durations (seconds) in completed journeys
    stop = time.monotonic() + args.journey_seconds

    def loop(client: int) -> None:
        count = 0
        while time.monotonic() < stop:
            count += 1
            began = time.perf_counter()
            marks: list[tuple[str, float]] = []
            try:
                run_journey(platform.gateway_url, say=lambda _line: None,
                            source_address=f"127.0.{client + 1}.{count % 250 + 1}",
                            mark=lambda step, into=marks: into.append((step, time.perf_counter())))
                ended = time.perf_counter()
                durations.append(ended - began)
                for (step, start), (_next, end) in zip(marks, marks[1:] + [("", ended)], strict=True):
                    steps.setdefault(step, []).append(end - start)
            except Exception as exc:  # reported, not raised: the figure counts completed journeys
                failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(args.journey_clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    note = f"{len(durations)} journeys by {args.journey_clients} clients in {elapsed:.0f} s"
    if failures:
        note += f"; {len(failures)} failed, first: {failures[0]}"
    return Row("whole candidate journeys", len(durations) / elapsed, "journeys/s",
               percentile(durations, 0.5) if durations else None, percentile(durations, 0.99) if durations else None,
               note=note, detail=journey_steps_table(steps))


def journey_steps_table(steps: dict[str, list[float]]) -> str:
    """Each step of the completed journeys, in journey order: p50 and p99 in ms. "(event)" steps wait for an
    event to travel (outbox, relay, broker, consumer) and be applied."""
    if not steps:
        return ""
    lines = ["| journey step | p50 ms | p99 ms |", "|---|---:|---:|"]
    for step, seconds in steps.items():
        lines.append(f"| {step} | {percentile(seconds, 0.5):,.1f} | {percentile(seconds, 0.99):,.1f} |")
    return "\n".join(lines)


def bulk_issuance(platform: Platform, env: dict, args, workdir: Path) -> Row:
    result = issuance.measure(platform, env["AMQP_URI"], args.certificates, workdir)
    complete = result.events_received == result.count and result.issued_in_database >= result.count
    return Row(f"issuance of {result.count:,} certificates, events delivered", result.issue_rate, "certificates/s",
               baseline="raw pika publish with confirms", baseline_throughput=result.publish_rate,
               target=">= 0.5 x baseline, every event delivered",
               met=complete and result.issue_rate >= 0.5 * result.publish_rate,
               note=f"{result.issued_in_database:,} issued in the database, {result.events_received:,} events "
                    f"received in {result.issue_seconds:.1f} s; baseline published {result.count:,} in "
                    f"{result.publish_seconds:.1f} s; CPU ms per certificate: "
                    + ", ".join(f"{name} {ms:.2f}" for name, ms in result.cpu_ms_per_certificate.items() if ms))


def result_import(args) -> Row:
    completed = subprocess.run([sys.executable, "-m", "bench.result_import", "--rows", str(args.import_rows)],
                               capture_output=True, text=True, check=True)
    out = completed.stdout
    import_rate = float(re.search(r"^run_import \(child process\)\s+[\d,]+\s+[\d.]+\s+([\d,]+)", out, re.M)
                        .group(1).replace(",", ""))
    copy_rate = float(re.search(r"^raw COPY into exam_results_copy\s+[\d,]+\s+[\d.]+\s+([\d,]+)", out, re.M)
                      .group(1).replace(",", ""))
    peak = float(re.search(r"peak memory: (\d+) MB", out).group(1))
    twin = re.search(r"ratio import/COPY into the indexed twin: ([\d.]+)", out)
    return Row(f"import of {args.import_rows:,} course results", import_rate, "rows/s",
               baseline="PostgreSQL COPY, bare table", baseline_throughput=copy_rate,
               target=">= 0.5 x baseline, peak < 300 MB", met=import_rate >= 0.5 * copy_rate and peak < 300,
               note=f"peak memory of the importing process {peak:.0f} MB"
                    + (f"; against a COPY into a twin with exam_results' indexes: {twin.group(1)}" if twin else ""))


def entrypoint_calls(metrics_port: int, entrypoint: str) -> float:
    """``credence_entrypoint_calls_total`` of one entrypoint, from one process's metrics port."""
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(float(value) for value in re.findall(
        r'^credence_entrypoint_calls_total\{[^}]*entrypoint="' + re.escape(entrypoint) + r'"[^}]*\} ([\d.e+]+)$',
        text, re.M))


def scale_out(platform: Platform, env: dict, check: dict | None, args, workdir: Path) -> list[Row]:
    """A second instance of verification and of scoring (each its own process and metrics port, the same
    queues): the loads again, and how the calls divided between the two instances."""
    from deploy.processes import BY_NAME

    extra: dict[str, tuple[subprocess.Popen, int]] = {}
    rows = []
    try:
        for name in ("verification", "scoring"):
            spec = BY_NAME[name]
            port = free_port()
            log = open(workdir / "log" / f"{name}-2.log", "ab")
            extra[name] = (subprocess.Popen(spec.command(), cwd=platform.cwd,
                                            env=dict(platform.env, **{spec.metrics_port_env: str(port)}),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True), port)
            log.close()
        time.sleep(8)  # both consuming
        first = {name: platform.metrics_port(BY_NAME[name]) for name in extra}
        before = {(name, i): entrypoint_calls(port, entry) for name, entry in
                  (("verification", "public_checks"), ("scoring", "results_for_candidates"))
                  for i, port in enumerate((first[name], extra[name][1]))}
        if check is not None:
            url = platform.gateway_url + "/api/v1/certificate-checks"
            load = post_json(url, check, args.seconds, 32, workdir)
            calls = [entrypoint_calls(port, "public_checks") - before[("verification", i)]
                     for i, port in enumerate((first["verification"], extra["verification"][1]))]
            rows.append(Row("public check, 2 verification instances", load.requests_per_second, "req/s",
                            load.p50_ms, load.p99_ms, note=f"batches per instance {calls[0]:.0f} / {calls[1]:.0f}"))
        tokens = workdir / "tokens.txt"
        if tokens.exists():
            load = result_reading.get_with_tokens(platform.gateway_url + "/api/v1/me/results", tokens, args.seconds,
                                                  64, workdir)
            calls = [entrypoint_calls(port, "results_for_candidates") - before[("scoring", i)]
                     for i, port in enumerate((first["scoring"], extra["scoring"][1]))]
            rows.append(Row("result reading, 2 scoring instances", load.requests_per_second, "req/s",
                            load.p50_ms, load.p99_ms, note=f"calls per instance {calls[0]:.0f} / {calls[1]:.0f}"))
    finally:
        for process, _port in extra.values():
            process.terminate()
        for process, _port in extra.values():
            process.wait(timeout=40)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each HTTP load")
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--checked-certificates", type=int, default=100_000,
                        help="certificates seeded into verification's read model for the public-check load")
    parser.add_argument("--gateway", choices=GATEWAY_SERVERS, default=DEFAULT_GATEWAY_SERVER,
                        help="the gateway's HTTP layer (GATEWAY_SERVER)")
    # 100,000 (the issue's size) takes about half an hour at today's rate; the rate does not depend on the count
    parser.add_argument("--certificates", type=int, default=20_000)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--journey-clients", type=int, default=4)
    parser.add_argument("--journey-seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, 5-second loads")
    parser.add_argument("--only", default="",
                        help="comma-separated scenarios: check,read,journeys,scale,issue,import")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.journey_seconds = 5.0, 15.0
        args.candidates, args.certificates, args.import_rows = 1_000, 5_000, 100_000
        args.checked_certificates = 10_000
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if not wrk_available():
        print("wrk is missing: `make bench-tools` installs it")
        return 2
    quiet_client_logging()
    speed = machine_speed()

    vhost = create_vhost()
    workdir = Path(tempfile.mkdtemp(prefix="credence-bench-"))
    env = dict(os.environ, CREDENCE_ENV="development", AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               # the per-address limit off (every request comes from 127.0.0.1), the per-number one as in production
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}", PUBLIC_RATE_LIMIT_PER_MINUTE="0",
               OUTBOX_POLL_INTERVAL="0.2", LOG_LEVEL="WARNING", GATEWAY_SERVER=args.gateway,
               JWT_SECRET=JWT_SECRET, REPORT_DELAY_WORKING_DAYS="0")
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    databases = create_databases(args.backend, workdir, env)
    platform = Platform(env, workdir / "log")
    rows: list[Row] = []
    memory: dict[str, float] = {}
    def scenario(name: str, run) -> None:
        if only and name not in only:
            return
        began = time.monotonic()
        print(f"  {name} ...", end="", flush=True)
        row = run()
        rows.append(row)
        print(f" {row.throughput:,.1f} {row.unit} ({time.monotonic() - began:.0f} s)", flush=True)

    try:
        platform.migrate()
        platform.start()
        print(f"Credence benchmark on {args.backend}, {os.cpu_count()} cores, loopback "
              f"({time.strftime('%Y-%m-%d %H:%M')})", flush=True)

        check = None
        if not only or "check" in only:
            journey = run_journey(platform.gateway_url, say=lambda _line: None)
            check = {"holder_name": journey["full_name"],  # the scale-out load: one right pair
                     "certificate_number": journey["certificate"]["certificate_number"]}
            echo32, _p50, _p99 = echo_rate(env["AMQP_URI"], 32, args.seconds)
            scenario("check", lambda: public_check(platform, env, args, workdir, echo32))
        scenario("read", lambda: result_reads(platform, env, args, workdir))
        scenario("journeys", lambda: journeys(platform, args))
        if not only or "scale" in only:
            began = time.monotonic()
            print("  scale ...", end="", flush=True)
            scaled = scale_out(platform, env, check if (not only or "check" in only) else None, args, workdir)
            rows.extend(scaled)
            print(f" {len(scaled)} loads ({time.monotonic() - began:.0f} s)", flush=True)
        scenario("issue", lambda: bulk_issuance(platform, env, args, workdir))
        for name, process in platform.processes.items():
            peak = peak_memory_mb(process.pid)
            if peak is not None:
                memory[name] = peak
    finally:
        platform.stop()
        delete_vhost(vhost)
        drop_databases(databases)
    if args.backend == "postgresql":
        # on a database of its own, once the platform has stopped: verification would otherwise still be applying
        # the issuance's 20,000 events on the same two cores (0.77 of the indexed twin inside the suite against
        # 0.91 and 0.97 alone, docs/performance.md)
        scenario("import", lambda: result_import(args))
    text = table(rows, memory) + f"\nMachine speed: a 10-million-iteration Python loop took {speed:.2f} s.\n"
    print("\n" + text, end="")
    target = Path("var/bench-latest.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"Credence benchmark, {args.backend}, {os.cpu_count()} cores, "
                      f"{time.strftime('%Y-%m-%d %H:%M')}{' (--quick)' if args.quick else ''}\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
