"""Benchmark the bulk import of exam results against a raw PostgreSQL COPY of the same rows.

Creates a throw-away PostgreSQL database (credence_bench_<random>), migrates the scoring schema into it, loads a
roster of confirmed candidates with COPY, writes a CSV file of N course results for the course-based program ZK-LAW
and then measures, in the same database and the same run:
  1. the real import path (services.scoring.usecases.imports.run_import), in a child process of its own so that its
     peak memory is measured alone;
  2. a raw COPY of the same file into a scratch table with the same columns (the ceiling for this driver and server);
  3. for reference, a raw COPY of the same rows into exam_results_ref, a twin of exam_results with its primary key,
     unique constraint and indexes: what writing the stored rows costs at the least, whatever the import does.
Prints time, rows/s and the child's peak RSS, the ratio import/COPY and whether every row was stored. The database is
dropped at the end, also on failure. Nothing is asserted: this prints figures.

    make bench-import     # or: .venv/bin/python -m bench.result_import --rows 20000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from credence_common.persistence.db import make_engine, normalise_db_uri
from credence_common.persistence.migrations import upgrade

# as every benchmark runs the platform (bench.public_check.bench_platform): scoring refuses to start without it, and
# the roster's names are encrypted with its development data key
os.environ.setdefault("CREDENCE_ENV", "development")
ADMIN_URI = os.environ.get("CREDENCE_BENCH_POSTGRES",
                           os.environ.get("CREDENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
REPO = Path(__file__).resolve().parents[1]
PROGRAM = "ZK-LAW"
COURSES = ("00015", "00227", "00230", "00233", "00249")  # seeded by scoring migration 0004
SITTING = "2026-04"
HEADER = "ticket_number,program_code,course_code,sitting,score\n"
COPY_COLUMNS = "ticket_number, program_code, course_code, sitting, score"
# exam_results_ref is a twin of exam_results (LIKE ... INCLUDING ALL: same primary key, unique constraint and
# indexes), filled by a raw COPY: the fastest any import can write the rows it stores.
REF_COLUMNS = ("result_id, ticket_number, candidate_id, program_code, course_code, sitting, final_score, batch_id, "
               "recorded_at")
RATIO_TARGET = 0.50
TWIN_RATIO_TARGET = 0.80
PEAK_TARGET_MB = 300
WRITE_BATCH = 10_000  # lines per write while generating files

# Runs in the child: `python -c CHILD <db_uri> <file_path> <rows> <format>`; reports progress on stderr, then prints
# one JSON line with its own figures on stdout.
CHILD = """
import json, resource, sys, time
from credence_common.persistence.db import make_engine
from services.scoring.usecases import imports
from services.scoring.usecases.imports import run_import
engine = make_engine(sys.argv[1])
row_by_row = []
def import_rows(*args, _real=imports.import_rows, **kwargs):
    row_by_row.append(True)
    return _real(*args, **kwargs)
imports.import_rows = import_rows  # only noted, to say which path the import took
step = max(int(sys.argv[3]) // 10, 1000)
mark = [step]
def progress(count):
    if count >= mark[0]:
        mark[0] += step
        print(f"  import: {count:,} rows read, {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
with open(sys.argv[2], "rb") as stream:
    started = time.perf_counter()
    report = run_import(engine, stream, sys.argv[4], "bench", on_rows=progress)
    seconds = time.perf_counter() - started
engine.dispose()
print(json.dumps({"seconds": seconds, "report": report.as_dict(), "row_by_row": bool(row_by_row),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def ticket(n: int) -> str:
    return f"1126{n:08d}"


def write_lines(path: Path, header: str | None, lines) -> None:
    """Stream lines to a file in batches, never holding the whole file."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        if header:
            out.write(header)
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= WRITE_BATCH:
                out.writelines(batch)
                batch.clear()
        out.writelines(batch)


def roster_candidate(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def roster_lines(tickets: int):
    from services.scoring.adapters.protection import DATA_KEYS

    keyring = DATA_KEYS.from_environment()  # the roster's names are stored encrypted, as scoring stores them
    for n in range(tickets):
        # ticket_number, candidate_id, full_name, resident_id_number_masked, merged_into (empty = NULL in CSV)
        yield f"{ticket(n)},{roster_candidate(n)},{keyring.encrypt(f'Candidate {n}')},110101********{n % 10000:04d},\n"


def result_lines(rows: int, seed: int):
    rng = random.Random(seed)
    for i in range(rows):
        yield f"{ticket(i // len(COURSES))},{PROGRAM},{COURSES[i % len(COURSES)]},{SITTING},{rng.randint(0, 100)}\n"


COMPOSITE_PROGRAM = "PSY-COUNSELLOR"  # seeded by scoring's migrations: 70 % machine exam + 30 % drill, gates
SHAPES = {
    # shape: (file format, results per candidate, what the file holds)
    "course-csv": ("csv", len(COURSES), f"course results of {PROGRAM}, CSV"),
    "course-jsonl": ("jsonl", len(COURSES), f"the same course results of {PROGRAM}, JSON Lines"),
    "composite-jsonl": ("jsonl", 1, f"composite results of {COMPOSITE_PROGRAM} (machine exam and drill), JSON Lines"),
}


def composite_marks(i: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed * 1_000_003 + i)
    return rng.randint(40, 100), rng.randint(40, 100)


def shaped_lines(shape: str, rows: int, seed: int):
    """The file the import reads, for ``shape``; the same rows as ``result_lines`` for the course shapes."""
    if shape == "course-csv":
        yield HEADER
        yield from result_lines(rows, seed)
    elif shape == "course-jsonl":
        for line in result_lines(rows, seed):
            ticket_number, program_code, course_code, sitting, score = line.rstrip("\n").split(",")
            yield json.dumps({"ticket_number": ticket_number, "program_code": program_code, "course_code": course_code,
                              "sitting": sitting, "score": int(score)}) + "\n"
    else:
        for i in range(rows):
            machine, drill = composite_marks(i, seed)
            yield json.dumps({"ticket_number": ticket(i), "program_code": COMPOSITE_PROGRAM, "sitting": SITTING,
                              "machine_exam_score": machine, "drill_score": drill}) + "\n"


def copy_lines_of(shape: str, rows: int, seed: int):
    """The same rows as CSV for the raw COPY into a bare table (``COPY_COLUMNS``; a composite row's score column
    holds its machine exam mark, the drill mark goes in course_code's place: the COPY ceiling only needs the same
    number of rows and fields)."""
    yield HEADER
    if shape != "composite-jsonl":
        yield from result_lines(rows, seed)
        return
    for i in range(rows):
        machine, drill = composite_marks(i, seed)
        yield f"{ticket(i)},{COMPOSITE_PROGRAM},{drill},{SITTING},{machine}\n"


def reference_lines(results_csv: Path, batch_id: str, recorded_at: str):
    """The results file as exam_results rows (ids and stamps added), for the COPY into an indexed twin."""
    with open(results_csv, encoding="utf-8") as source:
        next(source)
        for line in source:
            ticket_number, program_code, course_code, sitting, score = line.rstrip("\n").split(",")
            candidate = roster_candidate(int(ticket_number[4:]))
            yield (f"{uuid.uuid4()},{ticket_number},{candidate},{program_code},{course_code},{sitting},{score},"
                   f"{batch_id},{recorded_at}\n")


def copy_lines(db_uri: str, sql: str, lines, path: Path) -> None:
    """Write ``lines`` (CSV) to ``path`` and COPY them into ``db_uri`` with ``sql``: seeding for the benchmarks."""
    from credence_common.persistence.db import make_engine

    write_lines(path, None, lines)
    engine = make_engine(db_uri)
    try:
        copy_file(engine, sql, path)
    finally:
        engine.dispose()


def copy_file(engine, sql: str, path: Path) -> float:
    """COPY ... FROM STDIN streaming the file through psycopg2 (one statement, 1 MiB reads); returns the seconds
    taken, commit included. The bench's processes are not green; a test that seeds with this runs green
    (tests/conftest.py), where psycopg2 refuses ``copy_expert`` while the wait callback is set: it is lifted for
    the statement, which then blocks that whole process (seeding, nothing else is waiting)."""
    from psycopg2 import extensions

    callback = extensions.get_wait_callback()
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        with open(path, "rb") as stream:
            started = time.perf_counter()
            extensions.set_wait_callback(None)
            try:
                cursor.copy_expert(sql, stream, size=1 << 20)
            finally:
                extensions.set_wait_callback(callback)
            connection.commit()
            seconds = time.perf_counter() - started
        cursor.close()
    finally:
        connection.close()
    return seconds


def checkpoint(engine) -> None:
    """Start each measurement with no dirty pages left over from the previous step."""
    with engine.connect() as connection:
        connection.execute(text("CHECKPOINT"))
        connection.commit()


def run_child(db_uri: str, path: Path, rows: int, file_format: str = "csv") -> tuple[dict, float, float]:
    """(child's JSON figures, wall seconds of the whole child process, the child's peak RSS in MB)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, db_uri, str(path), str(rows), file_format], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate()
    finally:
        if child.poll() is None:  # interrupted: do not leave an orphan writing into a database about to be dropped
            child.terminate()
            child.wait()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"the import child exited with status {child.returncode}")
    # ru_maxrss is the largest of the waited-for children; this is the only child this process ever starts.
    # On Linux it is in KiB.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(out.strip().splitlines()[-1]), wall, peak_mb


def exit_on_sigterm(signum, _frame):
    """`timeout` and CI send SIGTERM; turn it into SystemExit so that the database is still dropped."""
    raise SystemExit(128 + signum)


def row(path: str, rows: int, seconds: float, peak: str) -> str:
    return f"{path:<36} {rows:>10,} {seconds:>9.2f} {rows / seconds:>11,.0f} {peak:>9}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="result rows in the file (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=2026, help="seed for the scores")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="course-csv",
                        help="what the file holds: course results as CSV (the COPY fast path), the same as JSON "
                             "Lines, or composite results as JSON Lines (both read row by row)")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be positive")
    rows = args.rows
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    file_format, per_candidate, what = SHAPES[args.shape]
    tickets = -(-rows // per_candidate)

    name = f"credence_bench_{uuid.uuid4().hex[:10]}"
    db_uri = ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
    admin = create_engine(normalise_db_uri(ADMIN_URI), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = None
    ref_problem = ""
    try:
        with tempfile.TemporaryDirectory(prefix="credence-bench-import-") as workdir:
            print(f"Result import benchmark: {rows:,} results for {tickets:,} candidates, {what} "
                  f"(PostgreSQL, database {name})")
            t0 = time.perf_counter()
            upgrade("scoring", db_uri)
            engine = make_engine(db_uri)
            roster_csv = Path(workdir) / "roster.csv"
            write_lines(roster_csv, None, roster_lines(tickets))
            copy_file(engine, "COPY roster (ticket_number, candidate_id, full_name_encrypted, "
                              "resident_id_number_masked, merged_into) FROM STDIN WITH (FORMAT csv)", roster_csv)
            results_csv = Path(workdir) / "results.csv"  # what the raw COPY reads
            write_lines(results_csv, None, copy_lines_of(args.shape, rows, args.seed))
            import_file = results_csv
            if args.shape != "course-csv":
                import_file = Path(workdir) / f"results.{file_format}"
                write_lines(import_file, None, shaped_lines(args.shape, rows, args.seed))
            with engine.begin() as connection:
                connection.execute(text("ANALYZE roster"))
                connection.execute(text("CREATE TABLE exam_results_copy (ticket_number VARCHAR(12) NOT NULL, "
                                        "program_code VARCHAR(32) NOT NULL, course_code VARCHAR(32) NOT NULL, "
                                        "sitting VARCHAR(7) NOT NULL, score INTEGER NOT NULL)"))
            reference_csv = Path(workdir) / "reference.csv"
            write_lines(reference_csv, None,
                        reference_lines(results_csv, str(uuid.uuid4()), "2026-04-30T00:00:00+00:00"))
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE exam_results_ref (LIKE exam_results INCLUDING ALL)"))
            size_mb = import_file.stat().st_size / 1e6
            print(f"setup (migrate, roster COPY, {size_mb:.1f} MB {file_format}): {time.perf_counter() - t0:.1f}s\n")

            checkpoint(engine)
            sys.stdout.flush()  # the child's progress lines (stderr) come after what was printed so far
            figures, child_wall, peak_mb = run_child(db_uri, import_file, rows, file_format)
            import_seconds = figures["seconds"]
            report = figures["report"]

            checkpoint(engine)
            copy_seconds = copy_file(engine, f"COPY exam_results_copy ({COPY_COLUMNS}) FROM STDIN "
                                             "WITH (FORMAT csv, HEADER true)", results_csv)

            checkpoint(engine)
            try:
                ref_seconds = copy_file(engine, f"COPY exam_results_ref ({REF_COLUMNS}) FROM STDIN WITH (FORMAT csv)",
                                        reference_csv)
            except Exception as exc:  # the schema moved on (say, a new NOT NULL column): the reference is optional
                ref_seconds, ref_problem = None, str(exc).splitlines()[0][:200]

            with engine.connect() as connection:
                stored = connection.execute(text("SELECT count(*) FROM exam_results")).scalar_one()
                copied = connection.execute(text("SELECT count(*) FROM exam_results_copy")).scalar_one()

        print(f"{'path':<36} {'rows':>10} {'seconds':>9} {'rows/s':>11} {'peak MB':>9}")
        print(row("run_import (child process)", rows, import_seconds, f"{peak_mb:.0f}"))
        print(row("raw COPY into exam_results_copy", rows, copy_seconds, "-"))
        if ref_seconds is not None:
            print(row("raw COPY into exam_results_ref (*)", rows, ref_seconds, "-"))
        print("\n(*) a twin of exam_results with its primary key, unique constraint and indexes"
              if ref_seconds is not None else f"\nraw COPY into exam_results_ref failed: {ref_problem}")
        print(f"(child process wall time, interpreter start and imports included: {child_wall:.2f}s)")
        print(f"path taken: {'row by row (imports.import_rows)' if figures['row_by_row'] else 'set-based fast path'}; "
              f"import report: status {report['status']}, recorded {report['recorded']:,}, "
              f"unchanged {report['unchanged']:,}, errors {report['error_count']:,}")
        ratio = copy_seconds / import_seconds
        print(f"\nratio import/COPY: {ratio:.2f} (target >= {RATIO_TARGET:.2f})"
              f"{'' if ratio >= RATIO_TARGET else f'  -- below target: COPY is {1 / ratio:.0f}x faster'}")
        if ref_seconds is not None:
            twin = ref_seconds / import_seconds
            print(f"ratio import/COPY into the indexed twin: {twin:.2f} (target >= {TWIN_RATIO_TARGET:.2f}, issue #18: "
                  f"how close the import comes to the cost of writing exam_results' indexes)"
                  f"{'' if twin >= TWIN_RATIO_TARGET else '  -- below target'}")
        print(f"peak memory: {peak_mb:.0f} MB (target < {PEAK_TARGET_MB} MB)"
              f"{'' if peak_mb < PEAK_TARGET_MB else '  -- above target'}")
        exact = stored == rows and copied == rows
        print(f"stored: {stored:,} results in exam_results, {copied:,} rows in exam_results_copy "
              f"({'exactly' if exact else 'NOT'} {rows:,})")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        if engine is not None:
            engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
