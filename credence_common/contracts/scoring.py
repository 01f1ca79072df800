"""RPC and HTTP schemas of the scoring service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from credence_common.contracts.tickets import TicketNumber

Strict = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResultLine(BaseModel):
    model_config = Strict

    ticket_number: TicketNumber = Field(description="The candidate's 12-character admission ticket number")
    program_code: str = Field(min_length=1, max_length=32)
    sitting: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="Exam sitting as YYYY-MM")
    final_score: int = Field(ge=0, le=100, strict=True)


class RecordResults(BaseModel):
    model_config = Strict

    results: list[ResultLine] = Field(min_length=1, max_length=5000)


class RecordResultsOutcome(BaseModel):
    recorded: int


class PublishResults(BaseModel):
    model_config = Strict

    program_code: str = Field(min_length=1, max_length=32)
    sitting: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")
    publish_at: AwareDatetime | None = Field(default=None,
                                             description="Release later, at this time (with its UTC offset)")


class PublishResultsOutcome(BaseModel):
    program_code: str
    sitting: str
    release_id: str | None = None
    state: Literal["published", "scheduled"] = "published"
    publish_at: datetime | None = None
    published: int = 0
    passed: int = 0
    failed: int = 0
    awaiting_evaluation: int = Field(default=0, description="Composite results without two agreeing experts yet")


class EvaluateResult(BaseModel):
    model_config = Strict

    decision: Literal["passed", "failed"]


class DecideHeldResult(BaseModel):
    model_config = Strict

    decision: Literal["passed", "failed"]
    reason: str = Field(min_length=3, max_length=200)


class EvaluationItem(BaseModel):
    result_id: str
    ticket_number: TicketNumber
    sitting: str
    final_score: int
    suggested_outcome: Literal["passed", "failed"]
    state: Literal["pending", "agreed", "held", "decided"]
    reviewers: list[str]
    evaluated_outcome: Literal["passed", "failed"] | None = None


class EvaluationQueue(BaseModel):
    items: list[EvaluationItem]


class ResultView(BaseModel):
    result_id: str
    ticket_number: TicketNumber
    program_code: str
    program_name: str
    course_code: str | None = Field(default=None, description="Course-based programs: which course")
    sitting: str
    status: Literal["evaluating", "passed", "failed"]
    final_score: int | None = Field(default=None, description="Withheld until the result is published")
    published_at: datetime | None = None
    review_window_ends_at: datetime | None = Field(
        default=None, description="Until when a re-check (复核) of this result may be asked for: the program's "
                                  "review window from the release; null until the result is released")


class ResultList(BaseModel):
    results: list[ResultView]


class ResultUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_format: Literal["csv", "jsonl"]
    content_base64: str = Field(min_length=1, max_length=30_000_000)


class ImportReportView(BaseModel):
    """The import's outcome; a file too large for the request is answered 202 with status ``queued`` and followed
    at ``GET /api/v1/result-imports/<batch_id>`` (``processing`` with ``rows_done``, then the outcome)."""

    batch_id: str
    status: Literal["imported", "already_imported", "rejected", "queued", "processing"]
    row_count: int
    recorded: int
    unchanged: int
    error_count: int
    rows_done: int | None = Field(default=None, description="Queued uploads: rows read so far")


class CourseView(BaseModel):
    course_code: str
    course_name: str
    course_kind: Literal["written", "practical"]
    pass_mark: int
    required: bool


class ProgramView(BaseModel):
    program_code: str
    program_name: str
    kind: Literal["composite", "course_based"]
    level: str | None = None
    pass_mark: int
    rules: str
    review_window_days: int = Field(description="Days after a result's release in which a re-check (复核) may be "
                                                "asked for")
    courses: list[CourseView] = []


class ProgramList(BaseModel):
    programs: list[ProgramView]


class RequestScoreReview(BaseModel):
    model_config = Strict

    reason: str = Field(min_length=3, max_length=300)


class CloseScoreReview(BaseModel):
    model_config = Strict

    resolution: Literal["unchanged", "corrected"]
    new_score: int | None = Field(default=None, ge=0, le=100, strict=True, description="Required when corrected")
    note: str = Field(min_length=3, max_length=300)


class ScoreReviewView(BaseModel):
    review_id: str
    result_id: str
    state: Literal["open", "unchanged", "corrected"]
    reason: str
    old_score: int
    new_score: int | None = None
    note: str | None = None
    requested_at: datetime
    closed_at: datetime | None = None


class ScoreReviewList(BaseModel):
    reviews: list[ScoreReviewView]


class GrantExemption(BaseModel):
    model_config = Strict

    candidate_id: str = Field(min_length=1, max_length=36)
    program_code: str = Field(min_length=1, max_length=32)
    course_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=3, max_length=200)


class CourseRecord(BaseModel):
    course_code: str
    course_name: str
    course_kind: Literal["written", "practical"]
    required: bool
    state: Literal["passed", "exempted", "failed", "not_taken"]
    best_score: int | None = None
    sitting: str | None = None


class ProgramRecord(BaseModel):
    program_code: str
    program_name: str
    kind: Literal["composite", "course_based"]
    courses: list[CourseRecord] = []
    graduated: bool | None = Field(default=None, description="Course-based programs: every required course passed")
    outcome: Literal["passed", "failed"] | None = Field(default=None, description="Composite: the latest outcome")


class TransferRecord(BaseModel):
    from_region: str
    to_region: str
    reason: str
    transferred_at: datetime


class ViolationRecord(BaseModel):
    program_code: str
    sitting: str
    violation: Literal["deduction", "disqualification"]


class CandidateRecord(BaseModel):
    """The exam record (考籍): tickets, programs with passed and exempted courses, violations, graduation."""

    candidate_id: str
    holder_name: str | None = Field(default=None, description="As confirmed by identity; absent if not on the roster")
    resident_id_number_masked: str | None = None
    ticket_numbers: list[TicketNumber]
    programs: list[ProgramRecord]
    violations: list[ViolationRecord]
    transfers: list[TransferRecord] = Field(default_factory=list, description="Transfers between exam regions")


class CorrectResult(BaseModel):
    model_config = Strict

    new_score: int = Field(ge=0, le=100, strict=True)
    reason: str = Field(min_length=3, max_length=200)


class ReleaseView(BaseModel):
    release_id: str
    program_code: str
    sitting: str
    publish_at: datetime
    state: Literal["scheduled", "published", "cancelled"]
    published: int
    created_by: str
    published_at: datetime | None = None


class ReleaseList(BaseModel):
    releases: list[ReleaseView]
