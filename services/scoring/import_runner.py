"""Running one import: hashing, parsing and the transaction boundaries, shared by the RPC and the CLI."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credence_common.errors import Conflict, InvalidInput
from credence_common.events import utcnow
from services.scoring import fast_import, imports
from services.scoring.importing import UnsupportedEncoding, detect_encoding, read_rows
from services.scoring.models import ImportBatch

FORMATS = ("csv", "jsonl")


def file_sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def run_import(engine, stream: BinaryIO, file_format: str, actor: str,
               on_rows: Callable[[int], None] | None = None, batch_id: str | None = None) -> imports.ImportReport:
    try:
        return _run_import(engine, stream, file_format, actor, on_rows, batch_id)
    except IntegrityError:
        raise Conflict("concurrent_change", "Another import wrote the same results at the same time; nothing of "
                                            "this one was kept. Import the file again.") from None


def _run_import(engine, stream: BinaryIO, file_format: str, actor: str,
                on_rows: Callable[[int], None] | None = None, batch_id: str | None = None) -> imports.ImportReport:
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
            done = imports.previous_import(session, sha)
            if done is not None:
                return imports.ImportReport(batch_id=done.batch_id, status="already_imported",
                                            row_count=done.row_count, unchanged=done.row_count)
        if file_format == "csv" and engine.dialect.name == "postgresql":
            try:
                return _fast_import(engine, stream, sha, encoding, actor, on_rows, batch_id)
            except fast_import.NotForFastPath:
                stream.seek(0)  # the row-by-row path handles (and explains) what the fast path cannot
        with Session(engine) as session, session.begin():
            return imports.import_rows(session, read_rows(stream, file_format), file_sha256=sha,
                                       file_format=file_format, encoding=encoding, actor=actor, on_rows=on_rows,
                                       batch_id=batch_id)
    except imports.ImportRejected as rejected:
        report = rejected.report
        with Session(engine) as session, session.begin():
            imports.record_rejection(session, report, file_sha256=sha, file_format=file_format, encoding=encoding,
                                     actor=actor)
        shown = [{"field": f"line {e['line']}" + (f": {e['field']}" if e["field"] else ""), "message": e["message"]}
                 for e in report.errors[:100]]
        raise InvalidInput("import_rejected",
                           f"{report.error_count} row error(s) in batch {report.batch_id}; nothing was imported. "
                           f"The full report: GET /api/v1/result-imports/{report.batch_id}.", shown,
                           fields={"batch_id": report.batch_id}) from None


def _fast_import(engine, stream: BinaryIO, sha: str, encoding: str, actor: str,
                 on_rows: Callable[[int], None] | None, batch_id: str | None = None) -> imports.ImportReport:
    report = fast_import.new_report(batch_id)
    with Session(engine) as session, session.begin():
        fast_import.stage_and_check(session.connection(), stream, encoding, report)
        if report.error_count:
            report.status = "rejected"
            raise imports.ImportRejected(report)
        session.add(ImportBatch(batch_id=report.batch_id, file_sha256=sha, file_format="csv", encoding=encoding,
                                status="imported", row_count=report.row_count, recorded=report.recorded,
                                unchanged=report.unchanged, error_count=0, created_by=actor, created_at=utcnow()))
    if on_rows:
        on_rows(report.row_count)
    return report


def run_import_bytes(engine, content: bytes, file_format: str, actor: str) -> imports.ImportReport:
    return run_import(engine, io.BytesIO(content), file_format, actor)
