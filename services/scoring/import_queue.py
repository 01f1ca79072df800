"""Result files too large to import within a request (issue #19 item 6): the upload is accepted at once (the
gateway answers 202 with the batch's URL), kept encrypted in ``queued_imports`` in the same transaction that
accepts it, and imported by the scoring service's timer; the clerk follows progress at the batch's URL.

Nothing is lost: a process that dies while importing leaves the import's own transaction uncommitted (all rows or
none), and an upload whose import has given no sign of life (on PostgreSQL its progress is a heartbeat) for
``STALE_AFTER`` is claimed again by any scoring process, at most ``MAX_ATTEMPTS`` times.
Progress (rows read so far) is written as the import goes on PostgreSQL; on SQLite, whose one writer is the import
itself, it is kept in the importing process and shown by it."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from credence_common.errors import CredenceError, InvalidInput
from credence_common.events import utcnow
from services.scoring import imports
from services.scoring.import_runner import FORMATS, run_import
from services.scoring.models import ImportBatch, QueuedImport

log = logging.getLogger(__name__)

# Files above this size are imported in the background: 256 KiB is about 7,000 CSV rows, which the row-by-row path
# imports within the gateway's 10 s RPC deadline on a slow host (IMPORT_INLINE_MAX_BYTES changes it).
INLINE_MAX_BYTES = 256 * 1024
STALE_AFTER = timedelta(hours=1)
MAX_ATTEMPTS = 3
QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"

_progress: dict[str, int] = {}  # rows read, by batch, in this process (SQLite)


def accept(session: Session, content: bytes, file_format: str, actor: str) -> dict:
    """Queue the file; the answer says where to follow it. The same file queued twice is one upload, and a file
    imported before is answered as such at once."""
    if file_format not in FORMATS:
        raise InvalidInput("unknown_format", "The file format must be csv or jsonl.")
    sha = hashlib.sha256(content).hexdigest()
    done = imports.previous_import(session, sha)
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


def report(session: Session, batch_id: str) -> dict | None:
    """A queued, running or failed upload; None for an unknown id and for one whose import is done (an imported or
    rejected file has its ``ImportBatch``, which the caller reads again: it may have been committed since its
    first look)."""
    upload = session.get(QueuedImport, batch_id)
    if upload is None or (upload.status == DONE and session.get(ImportBatch, batch_id) is not None):
        return None
    return progress_view(upload)
