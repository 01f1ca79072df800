from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.persistence.messaging import messaging_models
from credence_common.persistence.types import UTCDateTime
from services.scoring.adapters.protection import Sealed


class Base(DeclarativeBase):
    pass


# Sealed envelopes: a candidate_qualified event carries the full name, and published events are kept.
OutboxEvent, ProcessedEvent = messaging_models(Base, envelope_type=Sealed)


class Program(Base):
    """An exam program, as data: its kind and its rules (see domain/)."""

    __tablename__ = "programs"

    program_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    pass_mark: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="composite", server_default="composite")
    review_window_days: Mapped[int] = mapped_column(Integer, nullable=False, default=15, server_default="15")
    rules_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # CompositeRules for composite programs
    level: Mapped[str | None] = mapped_column(String(40), nullable=True)  # printed on the certificate


class Course(Base):
    __tablename__ = "courses"

    program_code: Mapped[str] = mapped_column(ForeignKey("programs.program_code"), primary_key=True)
    course_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    course_name: Mapped[str] = mapped_column(String(120), nullable=False)
    course_kind: Mapped[str] = mapped_column(String(10), nullable=False)  # written | practical
    pass_mark: Mapped[int] = mapped_column(Integer, nullable=False, default=60)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class ImportBatch(Base):
    """One uploaded result file. Its content hash makes a re-import of the same file a no-op."""

    __tablename__ = "import_batches"

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    file_format: Mapped[str] = mapped_column(String(8), nullable=False)
    encoding: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # imported | rejected
    row_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    recorded: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    errors_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class QueuedImport(Base):
    """An uploaded result file too large to import within the request (services/scoring/usecases/imports.py): kept
    (encrypted: it holds names and ticket numbers) until the background import has run, then emptied. Its id is the
    batch id the import will have, so the clerk follows one URL from upload to report."""

    __tablename__ = "queued_imports"

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    file_format: Mapped[str] = mapped_column(String(8), nullable=False)
    content: Mapped[str | None] = mapped_column("content_encrypted", Sealed(), nullable=True)  # base64, sealed
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # queued|processing|done|failed
    rows_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResultAudit(Base):
    """Append-only history of every change to a result: who, when, before, after, why."""

    __tablename__ = "result_audit"

    audit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    before_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    after_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class RosterEntry(Base):
    """Candidates known to scoring, built from identity's confirmation events."""

    __tablename__ = "roster"

    ticket_number: Mapped[str] = mapped_column(String(12), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    # encrypted at rest (services/scoring/adapters/protection.py)
    full_name: Mapped[str] = mapped_column("full_name_encrypted", Sealed(), nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    merged_into: Mapped[str | None] = mapped_column(String(12), nullable=True)


class ExamResult(Base):
    __tablename__ = "exam_results"
    __table_args__ = (UniqueConstraint("ticket_number", "program_code", "course_code", "sitting",
                                       name="uq_result_course_sitting"),)

    result_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # no index of its own: the unique constraint above leads with ticket_number and serves those look-ups
    ticket_number: Mapped[str] = mapped_column(String(12), nullable=False)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    course_code: Mapped[str] = mapped_column(String(32), nullable=False, default="", server_default="")
    sitting: Mapped[str] = mapped_column(String(7), nullable=False)
    final_score: Mapped[int] = mapped_column(Integer, nullable=False)
    components_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)
    # expert evaluation (composite programs): pending -> agreed | held -> decided; the panel's verdict
    evaluation_state: Mapped[str | None] = mapped_column(String(10), nullable=True)
    evaluated_outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResultEvaluation(Base):
    """One expert's sign-off on a composite result; two different experts must agree."""

    __tablename__ = "result_evaluations"

    result_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(80), primary_key=True)
    decision: Mapped[str] = mapped_column(String(10), nullable=False)  # passed | failed
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Release(Base):
    """Lifting the embargo on one program's sitting, now or at a set time."""

    __tablename__ = "releases"

    release_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    sitting: Mapped[str] = mapped_column(String(7), nullable=False)
    publish_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(10), nullable=False)  # scheduled | published | cancelled
    published: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScoreReview(Base):
    """A candidate's request to re-check one published result (复查), and how staff closed it."""

    __tablename__ = "score_reviews"

    review_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    result_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)  # one re-check per result
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)  # open | unchanged | corrected
    old_score: Mapped[int] = mapped_column(Integer, nullable=False)
    new_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str | None] = mapped_column(String(300), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CourseExemption(Base):
    """A course the candidate need not sit (免考), e.g. credited from an earlier degree; counts as passed."""

    __tablename__ = "course_exemptions"

    candidate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    program_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    course_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    granted_by: Mapped[str] = mapped_column(String(80), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class RegionTransfer(Base):
    """Transfers of a candidate's exam record between regions (转考), from identity's events."""

    __tablename__ = "region_transfers"

    transfer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    from_region: Mapped[str] = mapped_column(String(2), nullable=False)
    to_region: Mapped[str] = mapped_column(String(2), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    transferred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
