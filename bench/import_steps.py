"""Where the import's fast path spends its time, statement by statement (docs/performance.md).

Creates a throw-away PostgreSQL database as ``bench/result_import.py`` does (migrated scoring schema, a roster,
a CSV of N course results), then runs ``fast_import.stage_and_check`` once with every statement timed, and drops
the database. Prints the seconds of each statement; asserts nothing.

    .venv/bin/python -m bench.import_steps [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import result_import
from credence_common.persistence.db import make_engine, normalise_db_uri
from credence_common.persistence.migrations import upgrade
from services.scoring.adapters import fast_import


class TimedConnection:
    """The connection ``stage_and_check`` is given, printing how long each statement took."""

    def __init__(self, connection):
        self._connection = connection
        self.connection = connection.connection
        self.begin_nested = connection.begin_nested

    def execute(self, statement, *args, **kwargs):
        began = time.perf_counter()
        result = self._connection.execute(statement, *args, **kwargs)
        first_line = next(line for line in str(statement).splitlines() if line.strip()).strip()
        print(f"  {time.perf_counter() - began:7.2f} s  {first_line[:80]}", flush=True)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    name = f"credence_bench_{uuid.uuid4().hex[:10]}"
    db_uri = result_import.ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
    admin = create_engine(normalise_db_uri(result_import.ADMIN_URI), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade("scoring", db_uri)
        engine = make_engine(db_uri)
        with tempfile.TemporaryDirectory(prefix="credence-import-steps-") as workdir:
            roster = Path(workdir) / "roster.csv"
            result_import.write_lines(roster, None, result_import.roster_lines(-(-args.rows // 5)))
            result_import.copy_file(engine, "COPY roster (ticket_number, candidate_id, full_name_encrypted, "
                                            "resident_id_number_masked, merged_into) FROM STDIN WITH (FORMAT csv)",
                                    roster)
            results = Path(workdir) / "results.csv"
            result_import.write_lines(results, result_import.HEADER, result_import.result_lines(args.rows, 2026))
            with engine.begin() as connection:
                connection.execute(text("ANALYZE roster"))
            result_import.checkpoint(engine)
            copy_in = fast_import.copy_in

            def timed_copy_in(*copy_args, **copy_kwargs):
                began = time.perf_counter()
                copy_in(*copy_args, **copy_kwargs)
                print(f"  {time.perf_counter() - began:7.2f} s  COPY into the staging table", flush=True)

            fast_import.copy_in = timed_copy_in
            report = fast_import.new_report()
            print(f"stage_and_check, {args.rows:,} course results:")
            began = time.perf_counter()
            with engine.begin() as connection, open(results, "rb") as stream:
                fast_import.stage_and_check(TimedConnection(connection), stream, "utf-8", report)
            print(f"  {time.perf_counter() - began:7.2f} s  in all, commit included; recorded {report.recorded:,}, "
                  f"errors {report.error_count}")
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
