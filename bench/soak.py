"""The soak (issue #22 item 7): the whole platform under moderate mixed load for N minutes, sampled every 15 s.

    make soak                                           # an hour on SQLite
    .venv/bin/python -m bench.soak --minutes 30 --backend postgresql

Starts the platform as `make run` does (every service and the gateway, separate processes) against a RabbitMQ node
of its own (tests/faults/broker.py: free ports, a temporary directory; the shared broker on 5672 is never touched),
on SQLite files in a temporary directory or on throw-away PostgreSQL databases (credence_soak_<service>_<random>,
dropped at the end). Then, concurrently, until the time is up:

- ``JOURNEY_THREADS`` threads run whole candidate journeys through the gateway (``deploy.journey.run_journey``, as the
  fault suite does: each journey from a loopback address of its own, with patience);
- one thread posts public certificate checks, ``CHECKS_PER_SECOND``: (holder name, number) pairs of certificates the
  journeys issued, a wrong name with a real number, and numbers nobody was given;
- one thread reads candidates' results (``GET /api/v1/me/results``), ``READS_PER_SECOND``, with the tokens of
  the journeys' candidates (signing in again when one has expired);
- every ``IMPORT_EVERY_SECONDS`` a clerk imports a result file (``POST /api/v1/result-imports``, CSV) of course
  results of ZK-LAW for the tickets of recent journeys, each file a new sitting; every fifth upload sends the
  previous file again (answered ``already_imported``).

Every ``--sample-seconds`` (15) it records each process's resident memory (VmRSS of /proc, the process and its
children), every queue's depth on the soak's broker (``rabbitmqctl list_queues``: ready + unacknowledged) and the
row count of every table of every service database (plus each outbox's unpublished rows). Then it stops the load,
waits until the queues and outboxes have drained (a positive signal, bounded by ``DRAIN_SECONDS``) and takes a last
sample. The report (printed, and written to var/soak-<backend>.txt with the samples in var/soak-<backend>.csv and
the memory curves in var/soak-<backend>-rss.svg; matplotlib is not installed, so the plot is a hand-written SVG
rather than a PNG) gives per process the least-squares RSS slope in MiB/h over the samples after the warm-up (the
first ``--warmup-minutes``, 5 by default, are left out: imports, caches and pools fill then), per queue the largest
and the last depth, per table the first and last row counts with what the table is expected to do.

The idempotency records' lifetime is shortened for the soak (``IDEMPOTENCY_RECORD_TTL_HOURS`` = 0.05, three
minutes; the prune timer runs every 10 minutes) so that a 30-minute run sees them pruned.

It exits 1 when a threshold below is missed (the thresholds are ``THRESHOLDS``; each check says what it compares).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from credence_common.contracts.certificate_numbers import format_certificate_number
from deploy.journey import DEV_STAFF_PASSWORD, run_journey
from deploy.platform import Platform, free_port
from deploy.processes import PROCESSES, SERVICE_NAMES
from tests.faults.suite import POSTGRES_ADMIN_URI, drop_databases  # the fault suite's throw-away databases, as here

REPO = Path(__file__).resolve().parents[1]

# the load: moderate on purpose (a 2-core machine; the point is growth over time, not throughput)
JOURNEY_THREADS = 3
JOURNEY_SECONDS = 3.0  # each thread starts a journey at most this often (a pace: ~1 journey/s in all)
PATIENCE = 60.0  # seconds a journey keeps retrying a transient answer (no faults here; contention only)
CHECKS_PER_SECOND = 4.0
READS_PER_SECOND = 2.0
IMPORT_EVERY_SECONDS = 60.0
IMPORT_TICKETS = 40  # the newest journeys' tickets in each file (x 5 courses)
IMPORT_PROGRAM = "ZK-LAW"
IMPORT_COURSES = ("00015", "00227", "00230", "00233", "00249")  # seeded by scoring migration 0004
SOAK_IDEMPOTENCY_TTL_HOURS = "0.05"
DRAIN_SECONDS = 180.0

# the thresholds: what makes the soak fail (exit 1)
THRESHOLDS = {
    # a platform process's resident memory after the warm-up may grow by less than this (least-squares slope)
    "rss_slope_mib_per_hour": 10.0,
    # the slope is judged only over at least this much load after the warm-up (a shorter window is start-up noise)
    "min_slope_window_minutes": 10.0,
    # idempotency records must be seen pruned (their count falling) in a run at least this long (TTL 3 minutes,
    # prune timer every 10 minutes)
    "min_minutes_to_judge_pruning": 12.0,
}
# what the report says of a table, and whether its growth fails the soak
STATIC, BUSINESS, AUDIT, PRUNED, UNPRUNED = ("static", "grows with the business", "audit, kept on purpose",
                                             "pruned after a lifetime", "never pruned (known)")
TABLES = {
    # pruned by a timer: idempotency records after IDEMPOTENCY_RECORD_TTL_HOURS (credence_common/bus/entrypoints.py),
    # payments' notification nonces after a day, verification's check log and report accesses after 365 days
    "idempotency_records": PRUNED, "notification_nonces": PRUNED, "check_log": PRUNED, "report_accesses": PRUNED,
    # docs/architecture.md "Tables grow": never pruned
    "outbox": UNPRUNED, "processed_events": UNPRUNED, "one_time_codes": UNPRUNED, "login_throttle": UNPRUNED,
    "refresh_tokens": UNPRUNED, "sms_queue": UNPRUNED, "dev_sms_messages": UNPRUNED, "import_batches": UNPRUNED,
    "result_audit": AUDIT, "certificate_history": AUDIT, "staff_role_changes": AUDIT, "received_events": AUDIT,
    # one row per candidate, result, certificate, due, order, payment...
    "candidates": BUSINESS, "identity_confirmations": BUSINESS, "identity_liveness_sessions": BUSINESS,
    "roster": BUSINESS, "exam_results": BUSINESS, "result_evaluations": BUSINESS, "releases": BUSINESS,
    "certificates": BUSINESS, "candidate_payers": BUSINESS, "payment_dues": BUSINESS, "payment_orders": BUSINESS,
    "payment_order_items": BUSINESS, "provider_payments": BUSINESS, "sandbox_provider_trades": BUSINESS,
    "verifiable_certificates": BUSINESS, "number_sequences": BUSINESS, "staff_accounts": BUSINESS,
    "queued_imports": BUSINESS, "production_batches": BUSINESS,
}


def table_class(table: str) -> str:
    """What ``table`` (a bare table name) is expected to do; unlisted tables are expected to stay as they are."""
    if table.endswith(".outbox_unpublished") or table == "outbox_unpublished":
        return "drained"
    return TABLES.get(table.rsplit(".", 1)[-1], STATIC)


# ---------------------------------------------------------------- pure functions (tests/unit/test_soak.py)

def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per hour; None for fewer than two distinct times."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600.0


def parse_queues(lines: list[str]) -> dict[str, int]:
    """``rabbitmqctl list_queues -q name type messages_ready messages_unacknowledged consumers`` lines -> name:
    ready + unacknowledged. Lines that are not a queue (a header, a warning) are skipped."""
    depths: dict[str, int] = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            depths[parts[0]] = int(parts[2]) + int(parts[3])
    return depths


@dataclass
class Sample:
    t: float  # seconds since the load began (negative: before)
    kind: str  # "rss_mib", "queue" or "rows"
    name: str
    value: float


@dataclass
class Check:
    what: str
    ok: bool | None  # None: not judged (said why in detail)
    detail: str


@dataclass
class Outcome:
    backend: str
    minutes: float
    warmup_seconds: float
    load_seconds: float  # how long the load ran
    samples: list[Sample]
    counters: dict[str, Counter] = field(default_factory=dict)
    journeys_completed: int = 0
    journeys_failed: list[str] = field(default_factory=list)
    internal_errors: int = 0
    dead_processes: list[str] = field(default_factory=list)
    drained: bool = True
    shared_machine: str = ""


def series(samples: list[Sample], kind: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        if s.kind == kind:
            out.setdefault(s.name, []).append((s.t, s.value))
    return out


def memory_rows(outcome: Outcome) -> list[tuple[str, float, float, float | None, int, float | None]]:
    """(process, first MiB, last MiB, slope MiB/h after the warm-up over the load, samples in the slope, slope over
    the second half of that window alone). The last is reported, not judged: a curve that levels off (caches
    filling) has a much smaller second-half slope than a steady leak, which keeps its slope."""
    rows = []
    for name, points in series(outcome.samples, "rss_mib").items():
        window = [(t, v) for t, v in points if outcome.warmup_seconds <= t <= outcome.load_seconds]
        middle = (outcome.warmup_seconds + outcome.load_seconds) / 2
        rows.append((name, points[0][1], points[-1][1], slope_per_hour(window), len(window),
                     slope_per_hour([(t, v) for t, v in window if t >= middle])))
    return rows


def queue_rows(outcome: Outcome) -> list[tuple[str, int, int]]:
    """(queue, largest depth, last depth) for every queue seen; a queue gone before the last sample ends at 0."""
    last_t = max((s.t for s in outcome.samples if s.kind == "queue"), default=0.0)
    rows = []
    for name, points in series(outcome.samples, "queue").items():
        end = int(points[-1][1]) if points[-1][0] == last_t else 0
        rows.append((name, int(max(v for _, v in points)), end))
    return sorted(rows)


def table_rows(outcome: Outcome) -> list[tuple[str, int, int, int, str]]:
    """(service.table, first rows, largest rows, last rows, expected behaviour)."""
    rows = []
    for name, points in series(outcome.samples, "rows").items():
        rows.append((name, int(points[0][1]), int(max(v for _, v in points)), int(points[-1][1]), table_class(name)))
    return sorted(rows)


def throughput(outcome: Outcome, window: float = 300.0) -> list[tuple[str, float | None, float | None]]:
    """(what, per minute in the first ``window`` seconds of the load, per minute in its last): does the platform
    slow down as its tables grow?"""

    def rate(points: list[tuple[float, float]], start: float, end: float) -> float | None:
        inside = [(t, v) for t, v in points if start - 1e-6 <= t <= end + 1e-6]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 60

    rows = []
    for name, points in series(outcome.samples, "done").items():
        end = outcome.load_seconds
        rows.append((name, rate(points, 0.0, min(window, end)), rate(points, max(0.0, end - window), end)))
    return rows


def pruned_seen(points: list[tuple[float, float]]) -> bool:
    return any(later < earlier for (_, earlier), (_, later) in zip(points, points[1:], strict=False))


def judge(outcome: Outcome) -> list[Check]:
    checks: list[Check] = []
    window_minutes = (outcome.load_seconds - outcome.warmup_seconds) / 60
    limit = THRESHOLDS["rss_slope_mib_per_hour"]
    for name, _first, _last, slope, count, _later in memory_rows(outcome):
        if name.startswith("rabbitmq"):
            continue  # reported, not judged: the broker is not the platform's code
        if window_minutes < THRESHOLDS["min_slope_window_minutes"] or slope is None:
            checks.append(Check(f"{name}: RSS slope after warm-up < {limit:g} MiB/h", None,
                                f"not judged: {window_minutes:.1f} min of load after the warm-up "
                                f"(< {THRESHOLDS['min_slope_window_minutes']:g})"))
        else:
            checks.append(Check(f"{name}: RSS slope after warm-up < {limit:g} MiB/h", slope < limit,
                                f"{slope:+.1f} MiB/h over {count} samples"))
    checks.append(Check("every process still running at the end", not outcome.dead_processes,
                        ", ".join(outcome.dead_processes) or "all running"))
    queues = queue_rows(outcome)
    left = [f"{name} ({end})" for name, _, end in queues if end]
    checks.append(Check("every queue drained after the load (ready + unacked = 0)", outcome.drained and not left,
                        ", ".join(left) or "all empty"))
    letters = [f"{name} (max {high})" for name, high, _ in queues if "dead-letters" in name and high]
    checks.append(Check("no dead letters at any time", not letters, ", ".join(letters) or "none"))
    tables = table_rows(outcome)
    unpublished = [f"{name} ({end})" for name, _, _, end, cls in tables if cls == "drained" and end]
    checks.append(Check("no unpublished outbox rows at the end", not unpublished, ", ".join(unpublished) or "none"))
    grew = [f"{name} {first}->{end}" for name, first, _, end, cls in tables if cls == STATIC and end > first]
    checks.append(Check("no table outside the expected-growth lists grew", not grew, ", ".join(grew) or "none"))
    records = {name: points for name, points in series(outcome.samples, "rows").items()
               if name.endswith(".idempotency_records") and max(v for _, v in points) > 0}
    if outcome.load_seconds / 60 < THRESHOLDS["min_minutes_to_judge_pruning"]:
        checks.append(Check("idempotency records pruned (their count fell) in every service that keeps them", None,
                            f"not judged: run shorter than {THRESHOLDS['min_minutes_to_judge_pruning']:g} min"))
    else:
        unpruned = [name for name, points in records.items() if not pruned_seen(points)]
        checks.append(Check("idempotency records pruned (their count fell) in every service that keeps them",
                            not unpruned, ", ".join(unpruned) or ", ".join(sorted(records)) or "none kept"))
    bad = {what: sum(n for status, n in counter.items() if status >= 500 or status in (0, 429))
           for what, counter in outcome.counters.items()}
    checks.append(Check("no request answered 5xx or 429, nor failed to connect", not any(bad.values()),
                        ", ".join(f"{w}: {n}" for w, n in bad.items() if n) or "none"))
    checks.append(Check("no journey failed", not outcome.journeys_failed,
                        f"{outcome.journeys_completed} completed, {len(outcome.journeys_failed)} failed"))
    checks.append(Check("the gateway logged no unexpected failure", not outcome.internal_errors,
                        str(outcome.internal_errors)))
    return checks


def render(outcome: Outcome, checks: list[Check], commit: str = "", when: str = "") -> str:
    hours = outcome.load_seconds / 3600
    lines = [f"soak on {outcome.backend}: {outcome.load_seconds / 60:.1f} min of load"
             + (f", commit {commit}" if commit else "") + (f", {when}" if when else ""),
             f"RSS slope: least squares over the samples from {outcome.warmup_seconds / 60:g} min (warm-up left out) "
             f"to the end of the load; samples every {sample_interval(outcome):.0f} s", ""]
    lines.append(f"{'process':<22} {'start MiB':>10} {'end MiB':>9} {'slope MiB/h':>12} {'samples':>8} "
                 f"{'2nd half MiB/h':>15}")
    for name, first, last, slope, count, later in memory_rows(outcome):
        shown = "-" if slope is None else f"{slope:+.1f}"
        second = "-" if later is None else f"{later:+.1f}"
        lines.append(f"{name:<22} {first:>10.1f} {last:>9.1f} {shown:>12} {count:>8} {second:>15}")
    lines += ["", f"{'queue':<56} {'max depth':>9} {'end':>5}"]
    lines += [f"{name:<56} {high:>9} {end:>5}" for name, high, end in queue_rows(outcome)]
    lines += ["", f"{'table':<44} {'start':>7} {'max':>7} {'end':>7} {'rows/h':>8}  expected"]
    for name, first, high, end, cls in table_rows(outcome):
        if first == high == end == 0 and cls == STATIC:
            continue  # empty all along: not worth a line
        rate = f"{(end - first) / hours:.0f}" if hours else "-"
        lines.append(f"{name:<44} {first:>7} {high:>7} {end:>7} {rate:>8}  {cls}")
    lines += ["", "requests: " + "; ".join(f"{what} " + ", ".join(f"{status or 'no answer'}: {n}"
                                                                     for status, n in sorted(counter.items()))
                                           for what, counter in outcome.counters.items()),
              f"journeys: {outcome.journeys_completed} completed, {len(outcome.journeys_failed)} failed"]
    shown = [f"{name} {first:.0f} -> {last:.0f}" for name, first, last in throughput(outcome)
             if first is not None and last is not None]
    if shown:
        lines.append("per minute, first 5 min of load -> last 5 min: " + ", ".join(shown))
    lines += [f"  failed journey: {reason}" for reason in outcome.journeys_failed[:5]]
    if outcome.shared_machine:
        lines.append(f"machine: {outcome.shared_machine}")
    lines.append("")
    for check in checks:
        mark = "ok  " if check.ok else ("--  " if check.ok is None else "FAIL")
        lines.append(f"{mark} {check.what}: {check.detail}")
    lines.append("PASSED" if all(c.ok is not False for c in checks) else "FAILED")
    return "\n".join(lines) + "\n"


def sample_interval(outcome: Outcome) -> float:
    times = sorted({s.t for s in outcome.samples if s.kind == "rss_mib"})
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return sorted(gaps)[len(gaps) // 2] if gaps else 0.0


def svg_plot(outcome: Outcome, width: int = 900, height: int = 420) -> str:
    """RSS over time per process, a plain SVG (no plotting library in the environment)."""
    curves = series(outcome.samples, "rss_mib")
    points = [p for c in curves.values() for p in c]
    if not points:
        return ""
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points) or 1
    v1 = max(v for _, v in points) * 1.05 or 1
    left, bottom, right, top = 60, height - 40, width - 200, 20

    def x(t):
        return left + (t - t0) / ((t1 - t0) or 1) * (right - left)

    def y(v):
        return bottom - v / v1 * (bottom - top)

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>',
           f'<text x="{left}" y="{height - 10}">minutes since the load began ({t0 / 60:.0f} to {t1 / 60:.0f}); '
           f'warm-up ends at {outcome.warmup_seconds / 60:g}</text>',
           f'<text x="5" y="{top + 10}">{v1:.0f} MiB</text>', f'<text x="5" y="{bottom}">0</text>']
    if t0 <= outcome.warmup_seconds <= t1:
        out.append(f'<line x1="{x(outcome.warmup_seconds):.1f}" y1="{top}" x2="{x(outcome.warmup_seconds):.1f}" '
                   f'y2="{bottom}" stroke="#bbb" stroke-dasharray="4"/>')
    for index, (name, curve) in enumerate(sorted(curves.items())):
        colour = colours[index % len(colours)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in curve)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{right + 10}" y="{top + 16 * (index + 1)}" fill="{colour}">{name} '
                   f'({curve[-1][1]:.0f} MiB)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_csv(samples: list[Sample], path: Path) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["seconds", "kind", "name", "value"])
        for s in samples:
            writer.writerow([f"{s.t:.1f}", s.kind, s.name, f"{s.value:g}"])


# ---------------------------------------------------------------- measuring

def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` and of its descendants, in KiB; None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    total = int(match.group(1)) if match else 0
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = task.read_text().split()
        except OSError:
            continue
        total += sum(rss_kib(int(child)) or 0 for child in children)
    return total


class Databases:
    """Row counts of every table of every service database, and each outbox's unpublished rows."""

    def __init__(self, databases: dict[str, str]):
        self.databases = databases
        self.engines = {}
        for service, uri in databases.items():
            if uri.startswith("postgresql"):
                from sqlalchemy import create_engine

                from credence_common.persistence.db import normalise_db_uri

                self.engines[service] = create_engine(normalise_db_uri(uri), pool_size=1, max_overflow=0)

    def _query(self, service: str, sql: str) -> list[tuple]:
        if service in self.engines:
            from sqlalchemy import text

            with self.engines[service].connect() as connection:
                return [tuple(r) for r in connection.execute(text(sql))]
        with sqlite3.connect(self.databases[service], timeout=30) as connection:
            return connection.execute(sql).fetchall()

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for service in self.databases:
            if service in self.engines:
                names = [r[0] for r in self._query(service, "SELECT tablename FROM pg_tables WHERE schemaname = "
                                                            "'public'")]
            else:
                names = [r[0] for r in self._query(service, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                                            "AND name NOT LIKE 'sqlite_%'")]
            names = sorted(n for n in names if n != "alembic_version")
            if not names:
                continue
            union = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM \"{n}\"" for n in names)
            if "outbox" in names:
                union += " UNION ALL SELECT 'outbox_unpublished', count(*) FROM outbox WHERE published_at IS NULL"
            for name, count in self._query(service, union):
                found[f"{service}.{name}"] = int(count)
        return found

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


# ---------------------------------------------------------------- the load

class Load:
    def __init__(self, base_url: str, journey_threads: int = JOURNEY_THREADS):
        self.base_url = base_url
        self.stopping = threading.Event()
        self.completed: list[dict] = []
        self.failed: list[str] = []
        self.counters: dict[str, Counter] = {"check": Counter(), "read": Counter(), "import": Counter()}
        self.tokens: dict[str, str] = {}  # email -> candidate token
        self.threads = [threading.Thread(target=self._journeys, args=(n + 1,), daemon=True)
                        for n in range(journey_threads)]
        self.threads += [threading.Thread(target=self._paced, args=(CHECKS_PER_SECOND, self._check), daemon=True),
                         threading.Thread(target=self._paced, args=(READS_PER_SECOND, self._read), daemon=True),
                         threading.Thread(target=self._paced, args=(1 / IMPORT_EVERY_SECONDS, self._import),
                                          daemon=True)]
        self.imports = 0
        self.last_file = b""
        self.rng = random.Random(2026)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=PATIENCE * 3)

    def _journeys(self, thread: int) -> None:
        count, started = 0, time.monotonic()
        while not self.stopping.wait(max(0.0, started + JOURNEY_SECONDS - time.monotonic()) if count else 0):
            started = time.monotonic()
            count += 1
            try:
                self.completed.append(run_journey(self.base_url, say=lambda _line: None,
                                                  staff_password=DEV_STAFF_PASSWORD, patience=PATIENCE,
                                                  source_address=f"127.0.{thread}.{count % 250 + 1}"))
            except Exception as exc:
                self.failed.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    def _paced(self, rate: float, action) -> None:
        session = requests.Session()
        while not self.stopping.wait(1 / rate):  # a pace, not a wait for something to happen
            if self.completed:
                action(session)

    def _count(self, what: str, send) -> requests.Response | None:
        try:
            response = send()
        except requests.RequestException:
            self.counters[what][0] += 1
            return None
        self.counters[what][response.status_code] += 1
        return response

    def _check(self, session: requests.Session) -> None:
        journey = self.rng.choice(self.completed)
        name, number = journey["full_name"], journey["certificate"]["certificate_number"]
        roll = self.rng.random()
        if roll < 0.15:  # a real number with somebody else's name
            name = self.rng.choice(["赵六", "孙七", "周八"])
        elif roll < 0.3:  # a number nobody was given: a valid one (check digit), a serial no journey reaches
            number = format_certificate_number(int(number[:4]), number[4:6], self.rng.randint(90_000_000, 99_999_999))
        self._count("check", lambda: session.post(self.base_url + "/api/v1/certificate-checks", timeout=15,
                                                  json={"holder_name": name, "certificate_number": number}))

    def _read(self, session: requests.Session) -> None:
        journey = self.rng.choice(self.completed)
        token = self.tokens.get(journey["email"], journey["candidate_token"])
        response = self._count("read", lambda: session.get(self.base_url + "/api/v1/me/results", timeout=15,
                                                           headers={"Authorization": f"Bearer {token}"}))
        if response is not None and response.status_code == 401:  # expired (15 minutes): sign in again
            signed_in = session.post(self.base_url + "/api/v1/auth/login", timeout=15,
                                     json={"login": journey["email"], "password": journey["password"]})
            if signed_in.status_code == 200:
                self.tokens[journey["email"]] = signed_in.json()["access_token"]

    def _import(self, session: requests.Session) -> None:
        staff = session.post(self.base_url + "/api/v1/auth/staff-token", timeout=15,
                             json={"username": "admin", "password": DEV_STAFF_PASSWORD})
        if staff.status_code != 200:
            self.counters["import"][staff.status_code] += 1
            return
        self.imports += 1
        if self.imports % 5 == 0 and self.last_file:
            body = self.last_file  # the same file again: already_imported
        else:
            sitting = f"{2000 + self.imports // 12:04d}-{self.imports % 12 + 1:02d}"
            tickets = [j["ticket_number"] for j in self.completed[-IMPORT_TICKETS:]]
            body = ("ticket_number,program_code,course_code,sitting,score\n" + "".join(
                f"{ticket},{IMPORT_PROGRAM},{course},{sitting},{self.rng.randint(30, 100)}\n"
                for ticket in tickets for course in IMPORT_COURSES)).encode()
            self.last_file = body
        self._count("import", lambda: session.post(
            self.base_url + "/api/v1/result-imports?format=csv", data=body, timeout=60,
            headers={"Authorization": f"Bearer {staff.json()['access_token']}", "Content-Type": "text/csv"}))


# ---------------------------------------------------------------- the run

def rig(workdir: Path, backend: str):
    """The platform's environment (as the fault suite's, without its fault proxies), its broker and databases."""
    from tests.faults.broker import TestBroker

    broker = TestBroker(workdir / "broker")
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_URI")}
    env.update({"CREDENCE_ENV": "development", "AMQP_URI": broker.amqp_uri,
                "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}", "OUTBOX_POLL_INTERVAL": "0.2",
                "PUBLIC_RATE_LIMIT_PER_MINUTE": "100000", "CHECKS_PER_NUMBER_PER_MINUTE": "100000",
                "REPORT_DELAY_WORKING_DAYS": "0", "EVENT_RETRY_BASE_SECONDS": "0.5",
                "IDEMPOTENCY_RECORD_TTL_HOURS": SOAK_IDEMPOTENCY_TTL_HOURS, "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO)})
    env["PUBLIC_BASE_URL"] = "http://" + env["GATEWAY_ADDRESS"]
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    databases: dict[str, str] = {}
    if backend == "postgresql":
        from sqlalchemy import create_engine, text

        from credence_common.persistence.db import normalise_db_uri

        admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
        for service in SERVICE_NAMES:
            name = f"credence_soak_{service}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            databases[service] = env[f"{service.upper()}_DB_URI"] = POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
        admin.dispose()
    else:
        for service in SERVICE_NAMES:
            databases[service] = str(workdir / f"{service}.sqlite")
            env[f"{service.upper()}_DB_URI"] = f"sqlite:///{databases[service]}"
    return Platform(env, workdir / "log"), broker, databases


def other_load() -> str:
    """What else ran on the machine: the load average and other platforms' processes (fault suites, benches)."""
    load1, load5, load15 = os.getloadavg()
    mine = {os.getpid()}
    listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    others = sum(1 for line in listed if ("credence_common.runtime.runner" in line or "gateway.asgi" in line)
                 and int(line.split()[0]) not in mine)
    return f"load average {load1:.2f} {load5:.2f} {load15:.2f}, {others} platform processes running (ours included)"


def sample(t: float, platform: Platform, broker, databases: Databases, samples: list[Sample],
           load: Load | None = None) -> None:
    if load is not None:
        samples.append(Sample(t, "done", "journeys", len(load.completed)))
        for what, counter in load.counters.items():
            samples.append(Sample(t, "done", what + "s", sum(counter.values())))
    for name, process in platform.processes.items():
        kib = rss_kib(process.pid)
        if kib is not None:
            samples.append(Sample(t, "rss_mib", name, kib / 1024))
    try:
        broker_pid = int((broker.workdir / "pid").read_text().strip())
        kib = rss_kib(broker_pid)
        if kib is not None:
            samples.append(Sample(t, "rss_mib", "rabbitmq (soak node)", kib / 1024))
    except (OSError, ValueError):
        pass
    for name, depth in parse_queues(broker.queues()).items():
        samples.append(Sample(t, "queue", name, depth))
    for name, rows in databases.counts().items():
        samples.append(Sample(t, "rows", name, rows))


def drained(broker, databases: Databases) -> bool:
    queues = parse_queues(broker.queues())
    outboxes = {name: rows for name, rows in databases.counts().items() if name.endswith(".outbox_unpublished")}
    return not any(queues.values()) and not any(outboxes.values())


def soak(args, workdir: Path) -> Outcome:
    platform, broker, databases = rig(workdir, args.backend)
    counting = None
    samples: list[Sample] = []
    outcome = Outcome(args.backend, args.minutes, args.warmup_minutes * 60, 0.0, samples)
    try:
        broker.start()
        platform.migrate()
        platform.start(timeout=120)
        counting = Databases(databases)
        load = Load(platform.gateway_url, args.journey_threads)
        began = time.monotonic()
        sample(0.0, platform, broker, counting, samples, load)
        load.start()
        end = began + args.minutes * 60
        next_sample = began + args.sample_seconds
        shared = []
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))  # the sampling period
            if time.monotonic() >= next_sample:
                sample(time.monotonic() - began, platform, broker, counting, samples, load)
                next_sample += args.sample_seconds
                if len(shared) < 3 and time.monotonic() - began > len(shared) * args.minutes * 20:
                    shared.append(other_load())  # at the start, a third and two thirds of the way
                done = len(load.completed)
                print(f"  {(time.monotonic() - began) / 60:5.1f} min: {done} journeys, "
                      f"{sum(load.counters['check'].values())} checks, {sum(load.counters['read'].values())} "
                      f"reads, {sum(load.counters['import'].values())} imports", flush=True)
        outcome.load_seconds = time.monotonic() - began
        sample(outcome.load_seconds, platform, broker, counting, samples, load)
        load.stop()
        deadline = time.monotonic() + DRAIN_SECONDS
        while not drained(broker, counting):
            if time.monotonic() > deadline:
                outcome.drained = False
                break
            time.sleep(1)
        sample(time.monotonic() - began, platform, broker, counting, samples)
        outcome.counters = load.counters
        outcome.journeys_completed, outcome.journeys_failed = len(load.completed), load.failed
        outcome.dead_processes = [f"{name} (exit {p.returncode})" for name, p in platform.processes.items()
                                  if p.poll() is not None]
        outcome.internal_errors = sum(log.read_text(errors="replace").count("unexpected failure")
                                      for log in platform.log_dir.glob("gateway*.log"))
        outcome.shared_machine = "; ".join(shared)
        return outcome
    finally:
        if counting is not None:
            counting.close()
        platform.stop()
        broker.stop()
        if args.backend == "postgresql":
            drop_databases(databases)


def git_commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return found.stdout.strip() + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    from tests.faults.broker import rabbitmq_available, where_looked

    parser = argparse.ArgumentParser(description="The soak (see the module's docstring).")
    # an hour: the services' memory settles for about 20 minutes after start (docs/reliability.md "Soak", run of
    # a31114e), so a half-hour run with the 5-minute warm-up judges mostly that settling
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the load runs (default 60)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--warmup-minutes", type=float, default=5.0,
                        help="left out of the memory slopes (default 5)")
    parser.add_argument("--sample-seconds", type=float, default=15.0, help="sampling period (default 15)")
    parser.add_argument("--journey-threads", type=int, default=JOURNEY_THREADS)
    parser.add_argument("--report-dir", type=Path, default=REPO / "var")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if not rabbitmq_available():
        print(f"soak: no rabbitmq-server on this machine (looked at {where_looked()})")
        return 2

    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)  # the platform, the broker and the databases are still cleaned up

    signal.signal(signal.SIGTERM, _terminate)
    commit, when = git_commit(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"soak on {args.backend} for {args.minutes:g} min (commit {commit}, {when})", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"credence-soak-{args.backend}-"))
    try:
        outcome = soak(args, workdir)
    except BaseException:
        print(f"kept for inspection: {workdir}", file=sys.stderr)
        raise
    checks = judge(outcome)
    text = render(outcome, checks, commit, when)
    print(text, end="")
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / f"soak-{args.backend}.txt").write_text(text)
    write_csv(outcome.samples, args.report_dir / f"soak-{args.backend}.csv")
    (args.report_dir / f"soak-{args.backend}-rss.svg").write_text(svg_plot(outcome))
    passed = text.rstrip().endswith("PASSED")
    if passed:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir / 'log'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
