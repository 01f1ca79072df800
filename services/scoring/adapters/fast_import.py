"""The PostgreSQL fast path for course-result CSV files (a persistence adapter of the import use case,
``usecases/imports.py``): COPY into a staging table, check every row with set-based SQL (one pass when nothing is
wrong, ``VERDICT``), then one INSERT ... SELECT. Python only numbers the lines and streams bytes, so a million rows
import at a rate comparable to a raw COPY, in flat memory.

Same rules as the row-by-row path (``usecases/imports.py`` ``import_rows``): all rows or none, idempotent, conflicts
reported with line numbers. Files it does not handle (JSON Lines, composite programs, structural CSV damage it cannot
number) go to the row-by-row path, which reports them in full.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.tickets import sql_ticket_number_regex
from credence_common.persistence.db import copy_in
from services.scoring.domain.result_files import FIELDS, MAX_REPORTED_ERRORS, NAME_FIELD, REQUIRED, ImportReport

COPY_CHUNK = 256 * 1024
PG_ENCODINGS = {"utf-8": "UTF8", "utf-8-sig": "UTF8", "gb18030": "GB18030"}


class NotForFastPath(Exception):
    """The file needs the row-by-row path (which will explain any problem in full)."""


def header_columns(stream: BinaryIO, encoding: str) -> list[str]:
    first = stream.readline()
    columns = [c.strip() for c in next(csv.reader([first.decode(encoding).strip()]), [])]
    if not columns or any(c not in FIELDS for c in columns) or not set(REQUIRED) <= set(columns) or \
            len(set(columns)) != len(columns):
        raise NotForFastPath("header")
    if NAME_FIELD in columns:  # the roster's names are sealed: only Python compares them (usecases/imports.py)
        raise NotForFastPath("names are checked row by row")
    return columns


def numbered_lines(stream: BinaryIO, first_line: int = 2) -> Iterator[bytes]:
    """Prefixes each non-blank line with its physical line number, in chunks for COPY."""
    buffer = bytearray()
    for number, line in enumerate(stream, start=first_line):
        if not line.strip():
            continue
        buffer += str(number).encode() + b"," + line.rstrip(b"\r\n") + b"\n"
        if len(buffer) >= COPY_CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# Each staged row with what the checks need: its program's kind, its course's pass mark, its candidate.
STAGED = """
    SELECT s.line, s.ticket_number, s.program_code, COALESCE(s.course_code, '') AS course_code, s.sitting,
           p.kind AS program_kind, c.pass_mark AS course_pass_mark, r.candidate_id,
           COALESCE(r.merged_into, s.ticket_number) AS primary_ticket,
           -- CASE, not AND: SQL does not promise to test the pattern before attempting the cast
           CASE WHEN s.score ~ '^[0-9]{1,3}$' THEN s.score::int END AS score_int
    FROM import_staging s
    LEFT JOIN programs p ON p.program_code = s.program_code
    LEFT JOIN courses c ON c.program_code = s.program_code AND c.course_code = COALESCE(s.course_code, '')
    LEFT JOIN roster r ON r.ticket_number = s.ticket_number
"""
# A row that passes every check of its own (only such rows can repeat or contradict each other); a row outside it
# has at least one of CHECKS' per-row problems, unless its program is composite (not for this path).
VALID = """
    ticket_number ~ <TICKET_NUMBER> AND sitting ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'
      AND score_int <= 100 AND candidate_id IS NOT NULL
      AND program_kind = 'course_based' AND course_pass_mark IS NOT NULL
""".replace("<TICKET_NUMBER>", sql_ticket_number_regex())  # the contracts' one pattern (issue #21 item 1)
# One pass that tells whether any row of the file fails a check of its own, and whether it holds composite results.
# Most files have no problem: then the plain INSERT runs straight away, and exam_results' unique key finds the only
# problems left (a key repeated in the file or already recorded), in which case CHECKS and KNOWN_ROWS decide as
# before.
VERDICT = """
WITH staged AS (<STAGED>)
SELECT count(*), count(*) FILTER (WHERE NOT COALESCE(<VALID>, false)),
       COALESCE(bool_or(program_kind = 'composite'), false)
FROM staged
""".replace("<STAGED>", STAGED).replace("<VALID>", VALID)

# (placeholders, not an f-string: the patterns' braces are SQL's)
CHECKS = """
WITH staged AS MATERIALIZED (<STAGED>), valid AS MATERIALIZED (
    SELECT * FROM staged WHERE <VALID>
), repeated AS (
    -- hashing, not sorting, finds the few keys that occur with different scores
    SELECT primary_ticket, program_code, course_code, sitting, min(line) AS first_line
    FROM valid GROUP BY primary_ticket, program_code, course_code, sitting HAVING count(DISTINCT score_int) > 1
), problems AS (
    SELECT line, 'ticket_number' AS field, 'not a valid ticket number' AS message FROM staged
        WHERE ticket_number IS NULL OR ticket_number !~ <TICKET_NUMBER>
    UNION ALL SELECT line, 'sitting', 'not a valid sitting (YYYY-MM)' FROM staged
        WHERE sitting IS NULL OR sitting !~ '^[0-9]{4}-(0[1-9]|1[0-2])$'
    UNION ALL SELECT line, 'score', 'must be a whole number from 0 to 100' FROM staged
        WHERE score_int IS NULL OR score_int > 100
    UNION ALL SELECT line, 'program_code', 'unknown program' FROM staged WHERE program_kind IS NULL
    UNION ALL SELECT line, 'course_code', 'unknown course for this program' FROM staged
        WHERE program_kind = 'course_based' AND course_pass_mark IS NULL
    UNION ALL SELECT line, 'ticket_number', 'unknown ticket number' FROM staged
        WHERE candidate_id IS NULL AND ticket_number ~ <TICKET_NUMBER>
    UNION ALL SELECT v.line, 'score', 'conflicts with line ' || r.first_line
                                       || '; change a recorded result by correction'
        FROM repeated r
        JOIN valid v USING (primary_ticket, program_code, course_code, sitting)
        JOIN valid f ON f.line = r.first_line
        WHERE v.line <> r.first_line AND v.score_int <> f.score_int
    UNION ALL SELECT k.line, 'score', 'conflicts with the recorded result; change a recorded result by correction'
        FROM valid k JOIN exam_results e ON e.ticket_number = k.primary_ticket AND e.program_code = k.program_code
            AND e.course_code = k.course_code AND e.sitting = k.sitting
        WHERE e.final_score <> k.score_int
)
SELECT line, field, message, count(*) OVER () AS total FROM problems ORDER BY line, field LIMIT :limit
""".replace("<STAGED>", STAGED).replace("<VALID>", VALID).replace("<TICKET_NUMBER>", sql_ticket_number_regex())

# Result ids are the batch id's first 24 characters plus the line number in hex: unique, a valid UUID,
# and increasing within the batch, so the primary-key index is appended to rather than written at random.
INSERT = """
INSERT INTO exam_results (result_id, ticket_number, candidate_id, program_code, course_code, sitting, final_score,
                          batch_id, recorded_at)
SELECT left(:batch_id, 24) || lpad(to_hex(s.line), 12, '0'), COALESCE(r.merged_into, s.ticket_number),
       r.candidate_id, s.program_code, COALESCE(s.course_code, ''), s.sitting, s.score::int, :batch_id, :now
FROM import_staging s JOIN roster r ON r.ticket_number = s.ticket_number
"""
# Only when the file repeats a row, or repeats a recorded result (same score: the checks refused any other),
# is the conflict handling paid for.
RESULT_KEY = "uq_result_course_sitting"
UNIQUE_VIOLATION = "23505"
INSERT_SKIPPING_KNOWN = INSERT + f" ON CONFLICT ON CONSTRAINT {RESULT_KEY} DO NOTHING"
KNOWN_ROWS = """
SELECT (SELECT count(*) FROM import_staging)
       <> (SELECT count(*) FROM (SELECT DISTINCT COALESCE(r.merged_into, s.ticket_number), s.program_code,
                                                 s.course_code, s.sitting
                                 FROM import_staging s JOIN roster r ON r.ticket_number = s.ticket_number) d)
    OR EXISTS (SELECT 1 FROM import_staging s JOIN roster r ON r.ticket_number = s.ticket_number
               JOIN exam_results e ON e.ticket_number = COALESCE(r.merged_into, s.ticket_number)
                AND e.program_code = s.program_code AND e.course_code = COALESCE(s.course_code, '')
                AND e.sitting = s.sitting)
"""


def stage_and_check(connection: Connection, stream: BinaryIO, encoding: str, report: ImportReport,
                    now=None) -> None:
    """Runs inside the caller's transaction. Raises NotForFastPath before writing anything it cannot judge."""
    now = now or utcnow()
    columns = header_columns(stream, "utf-8-sig" if encoding == "utf-8-sig" else encoding)
    connection.execute(text("CREATE TEMP TABLE import_staging (line bigint PRIMARY KEY, "
                            + ", ".join(f"{name} text" for name in FIELDS) + ") ON COMMIT DROP"))
    try:  # one COPY per chunk of whole lines (credence_common.persistence.db.copy_in: how it stays green)
        copy_in(connection.connection.driver_connection,
                f"COPY import_staging (line, {', '.join(columns)}) FROM STDIN "
                f"WITH (FORMAT csv, ENCODING '{PG_ENCODINGS[encoding]}')", numbered_lines(stream))
    except Exception as exc:  # a damaged line COPY cannot read: the row-by-row path explains it
        raise NotForFastPath(str(exc)) from None
    # A temporary table has no statistics: without them the planner picks nested loops over a million rows.
    connection.execute(text("ANALYZE import_staging"))
    connection.execute(text("SET LOCAL work_mem = '256MB'"))
    report.row_count, refused, composite = connection.execute(text(VERDICT)).one()
    if composite:
        raise NotForFastPath("composite results are computed row by row")
    parameters = {"batch_id": report.batch_id, "now": now}
    if not refused:
        try:
            with connection.begin_nested():
                report.recorded = connection.execute(text(INSERT), parameters).rowcount
            report.unchanged = 0
            return
        except IntegrityError as clash:
            if not _repeats_a_result(clash):
                raise
            # a key repeated in the file or already recorded: the checks below say whether that is an error
    for line, field, message, total in connection.execute(text(CHECKS), {"limit": MAX_REPORTED_ERRORS}):
        report.errors.append({"line": line, "field": field, "message": message})
        report.error_count = total
    if report.error_count:
        return
    known = connection.execute(text(KNOWN_ROWS)).scalar()
    statement = INSERT_SKIPPING_KNOWN if known else INSERT
    report.recorded = connection.execute(text(statement), parameters).rowcount
    report.unchanged = report.row_count - report.recorded


def _repeats_a_result(clash: IntegrityError) -> bool:
    """Whether the INSERT failed on exam_results' one-result-per-course-and-sitting key (SQLSTATE 23505)."""
    cause = clash.orig
    return getattr(cause, "pgcode", None) == UNIQUE_VIOLATION and \
        getattr(getattr(cause, "diag", None), "constraint_name", None) == RESULT_KEY


def new_report(batch_id: str | None = None) -> ImportReport:
    return ImportReport(batch_id=batch_id or str(uuid.uuid4()), status="imported")

