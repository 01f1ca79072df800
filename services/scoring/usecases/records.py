"""After release: score reviews (复查), exemptions (免考) and the candidate's exam record (考籍)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound
from credence_common.contracts.events import CandidateQualifiedV1, QualificationWithdrawnV1, ResultCorrectedV1
from credence_common.contracts.scoring import (
    CandidateRecord,
    CourseRecord,
    ProgramRecord,
    ScoreReviewList,
    ScoreReviewView,
    TransferRecord,
    ViolationRecord,
)
from services.scoring import domain
from services.scoring.models import (
    Course,
    CourseExemption,
    ExamResult,
    Program,
    RegionTransfer,
    ResultEvaluation,
    RosterEntry,
    ScoreReview,
)
from services.scoring.usecases import (
    _graduated,
    _qualify_by_graduation,
    audit,
    graduation_id,
    outbox,
    outcome_of,
    recorders_of,
)


def request_review(session: Session, candidate_id: str, result_id: str, reason: str,
                   now: datetime | None = None) -> ScoreReviewView:
    now = now or utcnow()
    result = session.get(ExamResult, result_id)
    if result is None or result.candidate_id != candidate_id:
        raise Forbidden("forbidden", "You may ask for a re-check of your own results only.")
    if result.published_at is None:
        raise Conflict("not_published", "A result can be re-checked only after it is released.")
    program = session.get(Program, result.program_code)
    if now > domain.review_window_ends_at(result.published_at, program.review_window_days):
        raise Conflict("review_window_closed",
                       f"Re-checks must be asked for within {program.review_window_days} days of the release.")
    review = ScoreReview(review_id=str(uuid.uuid4()), result_id=result_id, candidate_id=candidate_id, reason=reason,
                         state="open", old_score=result.final_score, requested_at=now)
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("already_reviewed", "This result has already been re-checked once.") from None
    return ScoreReviewView.model_validate(review, from_attributes=True)


def close_review(session: Session, review_id: str, staff: str, resolution: str, new_score: int | None, note: str,
                 now: datetime | None = None) -> ScoreReviewView:
    now = now or utcnow()
    review = session.get(ScoreReview, review_id, with_for_update=True)
    if review is None:
        raise NotFound("review_not_found", "No such score review.")
    if review.state != "open":
        raise Conflict("review_closed", "This score review is already closed.")
    result = session.get(ExamResult, review.result_id, with_for_update=True)
    domain.refuse_conflict(domain.recheck_conflict(staff, recorders_of(session, result)))
    review.state, review.note, review.closed_by, review.closed_at = resolution, note, staff, now
    if resolution == "unchanged":
        return ScoreReviewView.model_validate(review, from_attributes=True)
    if new_score is None:
        raise InvalidInput("new_score_required", "A correction needs the corrected score.",
                           [{"field": "new_score", "message": "required when corrected"}])
    program = session.get(Program, result.program_code)
    courses = {c.course_code: c for c in session.scalars(select(Course).where(
        Course.program_code == program.program_code))}
    old_score, old_outcome = result.final_score, result.outcome
    graduated_before = program.kind == "course_based" and _graduated(session, result.candidate_id, program, courses)
    result.final_score = new_score
    result.outcome = _outcome_for(program, result, courses, new_score)
    review.new_score = new_score
    audit(session, result, staff, "corrected", before={"final_score": old_score, "outcome": old_outcome},
          after={"final_score": new_score, "outcome": result.outcome}, reason=f"score review {review_id}: {note}")
    outbox.add(session, ResultCorrectedV1(
        result_id=result.result_id, review_id=review_id, candidate_id=result.candidate_id,
        ticket_number=result.ticket_number, program_code=result.program_code, course_code=result.course_code,
        sitting=result.sitting, old_score=old_score, new_score=new_score, old_outcome=old_outcome,
        new_outcome=result.outcome, corrected_at=now), subject=result.candidate_id)
    if old_outcome == "passed" and result.outcome == "failed":
        _withdraw_qualification(session, result, program, courses, graduated_before, review_id, now)
    if old_outcome == "failed" and result.outcome == "passed":
        if program.kind == "course_based":
            session.flush()
            if not graduated_before and _graduated(session, result.candidate_id, program, courses):
                _qualify_by_graduation(session, result.candidate_id, program, now)
        else:
            holder = session.get(RosterEntry, result.ticket_number)
            outbox.add(session, CandidateQualifiedV1(
                result_id=result.result_id, candidate_id=result.candidate_id, ticket_number=result.ticket_number,
                full_name=holder.full_name, resident_id_number_masked=holder.resident_id_number_masked,
                program_code=program.program_code, program_name=program.program_name, sitting=result.sitting,
                final_score=new_score, qualified_at=now, level=program.level), subject=result.candidate_id)
    return ScoreReviewView.model_validate(review, from_attributes=True)


def _withdraw_qualification(session: Session, result: ExamResult, program: Program, courses: dict,
                            graduated_before: bool, review_id: str, now: datetime) -> None:
    """A correction from pass to fail takes away the qualification it gave: a composite program's result is the
    qualification itself; a course-based program's graduation goes only if the candidate no longer holds every
    required course (another sitting's pass or an exemption may still cover it). Certificates reacts."""
    if program.kind == "course_based":
        session.flush()
        if not graduated_before or _graduated(session, result.candidate_id, program, courses):
            return
        qualification_id = graduation_id(result.candidate_id, program.program_code)
    else:
        qualification_id = result.result_id
    outbox.add(session, QualificationWithdrawnV1(
        result_id=qualification_id, candidate_id=result.candidate_id, program_code=program.program_code,
        corrected_result_id=result.result_id, review_id=review_id, withdrawn_at=now), subject=result.candidate_id)


def _outcome_for(program: Program, result: ExamResult, courses: dict, score: int) -> str:
    # the corrected score judged by the same rule as at release (domain.result_outcome)
    rules = domain.CompositeRules.from_json(program.rules_json) if program.rules_json else None
    return outcome_of(result, program, rules, courses, score)


def reviews_of(session: Session, candidate_id: str) -> ScoreReviewList:
    rows = session.scalars(select(ScoreReview).where(ScoreReview.candidate_id == candidate_id)
                           .order_by(ScoreReview.requested_at)).all()
    return ScoreReviewList(reviews=[ScoreReviewView.model_validate(r, from_attributes=True) for r in rows])


def grant_exemption(session: Session, staff: str, candidate_id: str, program_code: str, course_code: str,
                    reason: str, now: datetime | None = None) -> CandidateRecord:
    now = now or utcnow()
    program = session.get(Program, program_code)
    course = session.get(Course, (program_code, course_code))
    if program is None or course is None:
        raise NotFound("course_not_found", "No such course in this program.")
    if session.get(CourseExemption, (candidate_id, program_code, course_code)) is not None:
        raise Conflict("already_exempted", "This course is already exempted for the candidate.")
    courses = {c.course_code: c for c in session.scalars(select(Course).where(Course.program_code == program_code))}
    graduated_before = _graduated(session, candidate_id, program, courses)
    session.add(CourseExemption(candidate_id=candidate_id, program_code=program_code, course_code=course_code,
                                reason=reason, granted_by=staff, granted_at=now))
    session.flush()
    if not graduated_before and _graduated(session, candidate_id, program, courses):
        _qualify_by_graduation(session, candidate_id, program, now)
    return candidate_record(session, candidate_id)


def candidate_record(session: Session, candidate_id: str) -> CandidateRecord:
    """Only released results appear: the embargo holds here too."""
    results = session.scalars(select(ExamResult).where(ExamResult.candidate_id == candidate_id,
                                                       ExamResult.published_at.is_not(None))
                              .order_by(ExamResult.sitting)).all()
    exemptions = {(e.program_code, e.course_code) for e in session.scalars(
        select(CourseExemption).where(CourseExemption.candidate_id == candidate_id))}
    program_codes = {r.program_code for r in results} | {p for p, _c in exemptions}
    programs = []
    for program in session.scalars(select(Program).where(Program.program_code.in_(program_codes))
                                   .order_by(Program.program_code)):
        mine = [r for r in results if r.program_code == program.program_code]
        if program.kind == "course_based":
            records = []
            for course in session.scalars(select(Course).where(Course.program_code == program.program_code)
                                          .order_by(Course.course_code)):
                attempts = [r for r in mine if r.course_code == course.course_code]
                best = max(attempts, key=lambda r: (r.outcome == "passed", r.final_score), default=None)
                state = ("exempted" if (program.program_code, course.course_code) in exemptions
                         else "not_taken" if best is None else best.outcome)
                records.append(CourseRecord(course_code=course.course_code, course_name=course.course_name,
                                            course_kind=course.course_kind, required=course.required, state=state,
                                            best_score=best.final_score if best else None,
                                            sitting=best.sitting if best else None))
            required = {c.course_code for c in records if c.required}
            done = {c.course_code for c in records if c.state in ("passed", "exempted")}
            programs.append(ProgramRecord(program_code=program.program_code, program_name=program.program_name,
                                          kind="course_based", courses=records,
                                          graduated=domain.graduated(required, done)))
        else:
            latest = mine[-1] if mine else None
            programs.append(ProgramRecord(program_code=program.program_code, program_name=program.program_name,
                                          kind="composite", outcome=latest.outcome if latest else None))
    violations = []
    for result in results:
        if result.components_json:
            violation = json.loads(result.components_json).get("violation", "none")
            if violation in ("deduction", "disqualification"):
                violations.append(ViolationRecord(program_code=result.program_code, sitting=result.sitting,
                                                  violation=violation))
    roster = session.scalars(select(RosterEntry).where(RosterEntry.candidate_id == candidate_id)
                             .order_by(RosterEntry.merged_into.is_not(None), RosterEntry.ticket_number)).all()
    tickets = sorted(entry.ticket_number for entry in roster)
    transfers = [TransferRecord(from_region=t.from_region, to_region=t.to_region, reason=t.reason,
                                transferred_at=t.transferred_at)
                 for t in session.scalars(select(RegionTransfer).where(RegionTransfer.candidate_id == candidate_id)
                                          .order_by(RegionTransfer.transferred_at))]
    return CandidateRecord(candidate_id=candidate_id, holder_name=roster[0].full_name if roster else None,
                           resident_id_number_masked=roster[0].resident_id_number_masked if roster else None,
                           ticket_numbers=tickets, programs=programs, violations=violations, transfers=transfers)


def open_reviews(session: Session) -> ScoreReviewList:
    rows = session.scalars(select(ScoreReview).where(ScoreReview.state == "open")
                           .order_by(ScoreReview.requested_at)).all()
    return ScoreReviewList(reviews=[ScoreReviewView.model_validate(r, from_attributes=True) for r in rows])


def correct_before_release(session: Session, result_id: str, staff: str, new_score: int, reason: str) -> dict:
    """A wrong score caught before release: corrected with its reason in the audit; experts sign again."""
    result = session.get(ExamResult, result_id, with_for_update=True)
    if result is None:
        raise NotFound("result_not_found", "No such result.")
    if result.published_at is not None:
        raise Conflict("result_already_published", "After release a result changes only through a re-check.")
    old = result.final_score
    if old != new_score:
        if domain.sign_offs_lapse(result.evaluation_state, old, new_score):
            session.execute(delete(ResultEvaluation).where(ResultEvaluation.result_id == result_id))
            result.evaluation_state, result.evaluated_outcome = "pending", None
        result.final_score = new_score
        audit(session, result, staff, "corrected", before={"final_score": old}, after={"final_score": new_score},
              reason=reason)
    return {"result_id": result_id, "final_score": new_score}
