"""Importing a result file (an exam centre's CSV or JSON Lines): every use case of it, in one place.

One file is one batch and one transaction: every row is checked, and if any row is wrong nothing is kept
and the batch is recorded as rejected with its row errors (line numbers, field, reason) for the clerk to
download. Re-importing a file already imported changes nothing; a row that repeats a recorded result with
the same marks is counted as unchanged; a row that disagrees with a recorded result is a conflict, never a
silent overwrite (changing a recorded result is a correction, with its own audit trail).

- **One import** (``run_import``): hashing, parsing and the transaction boundaries, shared by the RPC and the CLI.
  Course-result CSV files on PostgreSQL take the fast path (``adapters/fast_import.py``: COPY and set-based SQL);
  everything else goes row by row (``import_rows``).
- **Row by row** (``import_rows``): rows arrive from ``domain.result_files.read_rows`` (the pure parser) one at a
  time and are handled in chunks, so memory stays flat however large the file.
- **In the background** (``accept``, ``run_one``; issue #19 item 6): a file too large to import within a request
  is accepted at once (the gateway answers 202 with the batch's URL), kept encrypted in ``queued_imports`` in the
  same transaction that accepts it, and imported by the scoring service's timer; the clerk follows progress at the
  batch's URL (``import_report``). Nothing is lost: a process that dies while importing leaves the import's own
  transaction uncommitted (all rows or none), and an upload whose import has given no sign of life (on PostgreSQL
  its progress is a heartbeat) for ``STALE_AFTER`` is claimed again by any scoring process, at most
  ``MAX_ATTEMPTS`` times. Progress (rows read so far) is written as the import goes on PostgreSQL; on SQLite, whose
  one writer is the import itself, it is kept in the importing process and shown by it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import BinaryIO

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, CredenceError, InvalidInput, NotFound
from services.scoring import domain
from services.scoring.adapters import fast_import
from services.scoring.domain.result_files import (
    FORMATS,
    ImportRejected,
    ImportReport,
    ResultRow,
    RowError,
    UnsupportedEncoding,
    detect_encoding,
    read_rows,
)
from services.scoring.models import Course, ExamResult, ImportBatch, Program, QueuedImport, RosterEntry

log = logging.getLogger(__name__)

CHUNK = 1000
# Files above this size are imported in the background: 256 KiB is about 7,000 CSV rows, which the row-by-row path
# imports within the gateway's 10 s RPC deadline on a slow host (IMPORT_INLINE_MAX_BYTES changes it).
INLINE_MAX_BYTES = 256 * 1024
STALE_AFTER = timedelta(hours=1)
MAX_ATTEMPTS = 3
QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"

_progress: dict[str, int] = {}  # rows read, by batch, in this process (SQLite)


# --- one import ----------------------------------------------------------------------------------------------------

def file_sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def run_import(engine, stream: BinaryIO, file_format: str, actor: str,
               on_rows: Callable[[int], None] | None = None, batch_id: str | None = None) -> ImportReport:
    try:
        return _run_import(engine, stream, file_format, actor, on_rows, batch_id)
    except IntegrityError:
        raise Conflict("concurrent_change", "Another import wrote the same results at the same time; nothing of "
                                            "this one was kept. Import the file again.") from None


def _run_import(engine, stream: BinaryIO, file_format: str, actor: str,
                on_rows: Callable[[int], None] | None = None, batch_id: str | None = None) -> ImportReport:
    """All rows in one transaction, or none; a rejected batch is recorded with its row errors."""
    if file_format not in FORMATS:
        raise InvalidInput("unknown_format", "The file format must be csv or jsonl.")
    sha = file_sha256(stream)
    head = stream.read(65536)
    stream.seek(0)
    try:
        encoding = detect_encoding(head)
    except UnsupportedEncoding as exc:
        raise InvalidInput("unsupported_encoding", str(exc)) from None
    try:
        with Session(engine) as session:
            done = previous_import(session, sha)
            if done is not None:
                return ImportReport(batch_id=done.batch_id, status="already_imported",
                                            row_count=done.row_count, unchanged=done.row_count)
        if file_format == "csv" and engine.dialect.name == "postgresql":
            try:
                return _fast_import(engine, stream, sha, encoding, actor, on_rows, batch_id)
            except fast_import.NotForFastPath:
                stream.seek(0)  # the row-by-row path handles (and explains) what the fast path cannot
        with Session(engine) as session, session.begin():
            return import_rows(session, read_rows(stream, file_format), file_sha256=sha,
                                       file_format=file_format, encoding=encoding, actor=actor, on_rows=on_rows,
                                       batch_id=batch_id)
    except ImportRejected as rejected:
        report = rejected.report
        with Session(engine) as session, session.begin():
            record_rejection(session, report, file_sha256=sha, file_format=file_format, encoding=encoding,
                                     actor=actor)
        shown = [{"field": f"line {e['line']}" + (f": {e['field']}" if e["field"] else ""), "message": e["message"]}
                 for e in report.errors[:100]]
        raise InvalidInput("import_rejected",
                           f"{report.error_count} row error(s) in batch {report.batch_id}; nothing was imported. "
                           f"The full report: GET /api/v1/result-imports/{report.batch_id}.", shown,
                           fields={"batch_id": report.batch_id}) from None


def _fast_import(engine, stream: BinaryIO, sha: str, encoding: str, actor: str,
                 on_rows: Callable[[int], None] | None, batch_id: str | None = None) -> ImportReport:
    report = fast_import.new_report(batch_id)
    with Session(engine) as session, session.begin():
        fast_import.stage_and_check(session.connection(), stream, encoding, report)
        if report.error_count:
            report.status = "rejected"
            raise ImportRejected(report)
        session.add(ImportBatch(batch_id=report.batch_id, file_sha256=sha, file_format="csv", encoding=encoding,
                                status="imported", row_count=report.row_count, recorded=report.recorded,
                                unchanged=report.unchanged, error_count=0, created_by=actor, created_at=utcnow()))
    if on_rows:
        on_rows(report.row_count)
    return report


def run_import_bytes(engine, content: bytes, file_format: str, actor: str) -> ImportReport:
    return run_import(engine, io.BytesIO(content), file_format, actor)


# --- row by row ----------------------------------------------------------------------------------------------------

def previous_import(session: Session, file_sha256: str) -> ImportBatch | None:
    return session.scalars(select(ImportBatch).where(ImportBatch.file_sha256 == file_sha256,
                                                     ImportBatch.status == "imported")).first()


def import_rows(session: Session, rows: Iterable[ResultRow | RowError], *, file_sha256: str, file_format: str,
                encoding: str | None, actor: str, on_rows: Callable[[int], None] | None = None,
                batch_id: str | None = None) -> ImportReport:
    """Raises ImportRejected (after reading the whole file) when any row is wrong; the caller rolls back.
    The caller has already answered a file imported before (run_import). ``batch_id``: the id a
    queued upload was given when it was accepted (a new one otherwise)."""
    report = ImportReport(batch_id=batch_id or str(uuid.uuid4()), status="imported")
    programs = {p.program_code: p for p in session.scalars(select(Program))}
    rules = {code: domain.CompositeRules.from_json(p.rules_json) for code, p in programs.items() if p.rules_json}
    courses = {(c.program_code, c.course_code): c for c in session.scalars(select(Course))}
    chunk: list[ResultRow] = []
    for item in rows:
        report.row_count += 1
        if isinstance(item, RowError):
            report.error(item.line, item.field, item.message)
        else:
            chunk.append(item)
        if len(chunk) >= CHUNK:
            _apply(session, chunk, programs, rules, courses, report, actor)
            chunk = []
            if on_rows:
                on_rows(report.row_count)
    _apply(session, chunk, programs, rules, courses, report, actor)
    if on_rows:
        on_rows(report.row_count)
    if report.error_count:
        report.status = "rejected"
        raise ImportRejected(report)
    session.add(ImportBatch(batch_id=report.batch_id, file_sha256=file_sha256, file_format=file_format,
                            encoding=encoding, status="imported", row_count=report.row_count,
                            recorded=report.recorded, unchanged=report.unchanged, error_count=0,
                            created_by=actor, created_at=utcnow()))
    return report


def record_rejection(session: Session, report: ImportReport, *, file_sha256: str, file_format: str,
                     encoding: str | None, actor: str) -> None:
    session.add(ImportBatch(batch_id=report.batch_id, file_sha256=file_sha256, file_format=file_format,
                            encoding=encoding, status="rejected", row_count=report.row_count, recorded=0,
                            unchanged=0, error_count=report.error_count, errors_json=json.dumps(report.errors),
                            created_by=actor, created_at=utcnow()))


def _marks(row: ResultRow, program: Program, rules: dict, course: Course | None, report: ImportReport):
    """(final score, components JSON) for a row, or None after reporting why it cannot be scored."""
    if program.kind == "course_based":
        if course is None:
            report.error(row.line, "course_code", "unknown course for this program")
            return None
        if row.score is None:
            report.error(row.line, "score", "a course result needs a score")
            return None
        return row.score, None
    if row.course_code:
        report.error(row.line, "course_code", "this program has no courses")
        return None
    if row.machine_exam_score is None or row.drill_score is None:
        report.error(row.line, "machine_exam_score", "a composite result needs the machine-exam and drill scores")
        return None
    marks = domain.CompositeMarks(machine_exam_score=row.machine_exam_score, drill_score=row.drill_score,
                                  violation=row.violation or "none",
                                  qualification_review=row.qualification_review or "pass",
                                  homework_completion=row.homework_completion or "complete")
    components = json.dumps({"machine_exam_score": marks.machine_exam_score, "drill_score": marks.drill_score,
                             "violation": marks.violation, "qualification_review": marks.qualification_review,
                             "homework_completion": marks.homework_completion}, sort_keys=True)
    return domain.composite_final_score(rules[program.program_code], marks), components


def _apply(session: Session, chunk: list[ResultRow], programs: dict, rules: dict, courses: dict,
           report: ImportReport, actor: str) -> None:
    if not chunk:
        return
    tickets = {row.ticket_number for row in chunk}
    roster = {e.ticket_number: e
              for e in session.scalars(select(RosterEntry).where(RosterEntry.ticket_number.in_(tickets)))}
    primaries = {e.merged_into or e.ticket_number for e in roster.values()}
    existing = {(r.ticket_number, r.program_code, r.course_code, r.sitting): r for r in session.scalars(
        select(ExamResult).where(ExamResult.ticket_number.in_(primaries)))}
    in_chunk: dict[tuple, tuple[int, int, str | None]] = {}
    now = utcnow()
    for row in chunk:
        program = programs.get(row.program_code)
        if program is None:
            report.error(row.line, "program_code", "unknown program")
            continue
        entry = roster.get(row.ticket_number)
        if entry is None:
            report.error(row.line, "ticket_number", "unknown ticket number")
            continue
        if row.full_name is not None and not domain.same_name(row.full_name, entry.full_name):
            # a result under the wrong ticket is someone else's; the message names no one (it is logged)
            report.error(row.line, "full_name", "does not match the name registered for this ticket number")
            continue
        marks = _marks(row, program, rules, courses.get((row.program_code, row.course_code)), report)
        if marks is None:
            continue
        final_score, components = marks
        key = (entry.merged_into or row.ticket_number, row.program_code, row.course_code or "", row.sitting)
        recorded = existing.get(key)
        if recorded is not None or key in in_chunk:
            same = ((recorded.final_score, recorded.components_json) if recorded is not None
                    else in_chunk[key][1:]) == (final_score, components)
            if same:
                report.unchanged += 1
            else:
                earlier = f"line {in_chunk[key][0]}" if key in in_chunk else "the recorded result"
                report.error(row.line, "score", f"conflicts with {earlier}; change a recorded result by correction")
            continue
        in_chunk[key] = (row.line, final_score, components)
        if report.error_count:
            continue  # the batch is already lost: keep checking rows, stop writing them
        session.add(ExamResult(result_id=str(uuid.uuid4()), ticket_number=key[0], candidate_id=entry.candidate_id,
                               program_code=row.program_code, course_code=key[2], sitting=row.sitting,
                               final_score=final_score, components_json=components, batch_id=report.batch_id,
                               evaluation_state="pending" if program.kind == "composite" else None,
                               recorded_at=now))
        report.recorded += 1
    session.flush()


# --- in the background ---------------------------------------------------------------------------------------------

def accept(session: Session, content: bytes, file_format: str, actor: str) -> dict:
    """Queue the file; the answer says where to follow it. The same file queued twice is one upload, and a file
    imported before is answered as such at once."""
    if file_format not in FORMATS:
        raise InvalidInput("unknown_format", "The file format must be csv or jsonl.")
    sha = hashlib.sha256(content).hexdigest()
    done = previous_import(session, sha)
    if done is not None:
        return {"batch_id": done.batch_id, "status": "already_imported", "row_count": done.row_count,
                "recorded": 0, "unchanged": done.row_count, "error_count": 0}
    waiting = session.scalars(select(QueuedImport).where(
        QueuedImport.file_sha256 == sha, QueuedImport.status.in_((QUEUED, PROCESSING)))).first()
    if waiting is None:
        waiting = QueuedImport(batch_id=str(uuid.uuid4()), file_sha256=sha, file_format=file_format,
                               content=base64.b64encode(content).decode("ascii"), size_bytes=len(content),
                               status=QUEUED, rows_done=0, attempts=0, created_by=actor, created_at=utcnow())
        session.add(waiting)
        session.flush()
    return progress_view(waiting)


def progress_view(upload: QueuedImport) -> dict:
    return {"batch_id": upload.batch_id, "status": upload.status, "row_count": 0, "recorded": 0, "unchanged": 0,
            "error_count": 0, "rows_done": max(upload.rows_done or 0, _progress.get(upload.batch_id, 0)),
            "size_bytes": upload.size_bytes, "file_format": upload.file_format, "created_by": upload.created_by,
            "created_at": upload.created_at.isoformat(), "error": upload.error}


def claim(engine) -> str | None:
    """The oldest queued upload (or one left processing by a process that died: no heartbeat for ``STALE_AFTER``),
    claimed for this process with a conditional update, so two scoring processes never import the same file at
    once. An upload that has taken ``MAX_ATTEMPTS`` processes down with it is failed, not tried for ever."""
    now = utcnow()
    stale = (QueuedImport.status == PROCESSING) & (QueuedImport.started_at < now - STALE_AFTER)
    with Session(engine) as session, session.begin():
        session.execute(update(QueuedImport).where(stale, QueuedImport.attempts >= MAX_ATTEMPTS).values(
            status=FAILED, error="internal_error: the import stopped its process every time it was tried",
            content=None, finished_at=now).execution_options(synchronize_session=False))
        candidate = session.scalars(select(QueuedImport.batch_id).where(or_(QueuedImport.status == QUEUED, stale))
                                    .order_by(QueuedImport.created_at).limit(1)).first()
        if candidate is None:
            return None
        claimed = session.execute(update(QueuedImport).where(
            QueuedImport.batch_id == candidate, or_(QueuedImport.status == QUEUED, stale))
            .values(status=PROCESSING, started_at=now, attempts=QueuedImport.attempts + 1, rows_done=0)
            .execution_options(synchronize_session=False)).rowcount
        return candidate if claimed == 1 else None


def run_one(engine) -> str | None:
    """Claim and import one upload; returns its batch id (None when nothing waits)."""
    batch_id = claim(engine)
    if batch_id is None:
        return None
    with Session(engine) as session:
        upload = session.get(QueuedImport, batch_id)
        content, file_format, actor, attempts = (base64.b64decode(upload.content or ""), upload.file_format,
                                                 upload.created_by, upload.attempts)
    writes_progress = engine.dialect.name == "postgresql"
    # this claim, and no later one: a run that lost its claim (it went stale) writes nothing more
    ours = (QueuedImport.batch_id == batch_id) & (QueuedImport.attempts == attempts) & \
        (QueuedImport.status == PROCESSING)

    def on_rows(count: int) -> None:
        _progress[batch_id] = count
        if writes_progress:  # another connection (the import's own transaction is not committed yet); a heartbeat
            with engine.begin() as connection:
                connection.execute(update(QueuedImport).where(ours).values(rows_done=count, started_at=utcnow()))

    outcome, error = DONE, None
    try:
        report = run_import(engine, io.BytesIO(content), file_format, actor, on_rows=on_rows, batch_id=batch_id)
        if report.batch_id != batch_id:  # the same file was imported meanwhile under another batch
            error = f"already imported as batch {report.batch_id}"
    except CredenceError as refused:
        if refused.code != "import_rejected":  # a rejection is recorded as the batch's report; the rest here
            outcome, error = FAILED, f"{refused.code}: {refused.message}"[:300]
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is retried, then reported, never left hanging
        log.exception("background import %s failed", batch_id)
        if attempts < MAX_ATTEMPTS:
            with engine.begin() as connection:
                connection.execute(update(QueuedImport).where(ours).values(status=QUEUED))
            return batch_id
        outcome, error = FAILED, f"internal_error: {type(exc).__name__}"
    finally:
        _progress.pop(batch_id, None)
    with engine.begin() as connection:  # the file is no longer needed: it holds personal data
        connection.execute(update(QueuedImport).where(ours).values(
            status=outcome, error=error, content=None, finished_at=utcnow()))
    log.info("background import %s: %s", batch_id, outcome)
    return batch_id


def queued_report(session: Session, batch_id: str) -> dict | None:
    """A queued, running or failed upload; None for an unknown id and for one whose import is done (an imported or
    rejected file has its ``ImportBatch``, which the caller reads again: it may have been committed since its
    first look)."""
    upload = session.get(QueuedImport, batch_id)
    if upload is None or (upload.status == DONE and session.get(ImportBatch, batch_id) is not None):
        return None
    return progress_view(upload)


def import_report(session: Session, batch_id: str) -> dict:
    """A batch's report for the clerk: an imported or rejected file's (with its row errors), or a queued, running or
    failed upload's progress."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        waiting = queued_report(session, batch_id)  # accepted, not imported yet (or failed)
        if waiting is not None:
            return waiting
        batch = session.get(ImportBatch, batch_id)  # its import may have committed since the first look
    if batch is None:
        raise NotFound("import_not_found", "No such import batch.")
    return {"batch_id": batch.batch_id, "status": batch.status, "file_format": batch.file_format,
            "encoding": batch.encoding, "row_count": batch.row_count, "recorded": batch.recorded,
            "unchanged": batch.unchanged, "error_count": batch.error_count,
            "errors": json.loads(batch.errors_json) if batch.errors_json else [],
            "created_by": batch.created_by, "created_at": batch.created_at.isoformat()}
