"""Bulk import of exam results from exam centres (service layer).

One file is one batch and one transaction: every row is checked, and if any row is wrong nothing is kept
and the batch is recorded as rejected with its row errors (line numbers, field, reason) for the clerk to
download. Re-importing a file already imported changes nothing; a row that repeats a recorded result with
the same marks is counted as unchanged; a row that disagrees with a recorded result is a conflict, never a
silent overwrite (changing a recorded result is a correction, with its own audit trail).

Rows arrive from ``importing.read_rows`` one at a time and are handled in chunks, so memory stays flat
however large the file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.events import utcnow
from services.scoring import domain
from services.scoring.importing import ResultRow, RowError
from services.scoring.models import Course, ExamResult, ImportBatch, Program, RosterEntry

CHUNK = 1000
MAX_REPORTED_ERRORS = 10_000


@dataclass
class ImportReport:
    batch_id: str
    status: str  # imported | already_imported | rejected
    row_count: int = 0
    recorded: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[dict] = field(default_factory=list)

    def error(self, line: int, column: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "field": column, "message": message})

    def as_dict(self) -> dict:
        return {"batch_id": self.batch_id, "status": self.status, "row_count": self.row_count,
                "recorded": self.recorded, "unchanged": self.unchanged, "error_count": self.error_count}


class ImportRejected(Exception):
    def __init__(self, report: ImportReport):
        super().__init__(f"{report.error_count} row error(s)")
        self.report = report


def previous_import(session: Session, file_sha256: str) -> ImportBatch | None:
    return session.scalars(select(ImportBatch).where(ImportBatch.file_sha256 == file_sha256,
                                                     ImportBatch.status == "imported")).first()


def import_rows(session: Session, rows: Iterable[ResultRow | RowError], *, file_sha256: str, file_format: str,
                encoding: str | None, actor: str, on_rows: Callable[[int], None] | None = None,
                batch_id: str | None = None) -> ImportReport:
    """Raises ImportRejected (after reading the whole file) when any row is wrong; the caller rolls back.
    The caller has already answered a file imported before (import_runner.run_import). ``batch_id``: the id a
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
