"""Scoring use cases: the roster (from identity's events), recording and releasing results, the expert sign-off, a
result's history and the candidate's results. Importing a result file: ``usecases/imports.py``; after release
(re-checks, exemptions, the exam record): ``usecases/records.py``."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, NotFound
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    CandidateTransferredV1,
    ResultPublishedV1,
    TicketsLinkedV1,
    TicketsMergedV1,
)
from credence_common.contracts.scoring import (
    CourseView,
    EvaluationItem,
    EvaluationQueue,
    ProgramList,
    ProgramView,
    PublishResults,
    PublishResultsOutcome,
    RecordResults,
    RecordResultsOutcome,
    ReleaseList,
    ReleaseView,
    ResultList,
    ResultView,
)
from credence_common.persistence.messaging import Outbox
from services.scoring import domain
from services.scoring.models import (
    Course,
    CourseExemption,
    ExamResult,
    ImportBatch,
    OutboxEvent,
    Program,
    RegionTransfer,
    Release,
    ResultAudit,
    ResultEvaluation,
    RosterEntry,
)

log = logging.getLogger(__name__)
GRADUATION_NAMESPACE = uuid.UUID("6f1c3c2e-7d4a-4f8e-9a51-2b7c0f3e9d10")  # stable ids for program completions
outbox = Outbox(OutboxEvent)


def add_to_roster(session: Session, event: CandidateConfirmedV1) -> None:
    entry = session.get(RosterEntry, event.ticket_number)
    if entry is None:
        session.add(RosterEntry(ticket_number=event.ticket_number, candidate_id=event.candidate_id,
                                full_name=event.full_name,
                                resident_id_number_masked=event.resident_id_number_masked))


def link_tickets(session: Session, event: TicketsLinkedV1) -> None:
    for ticket_number in event.ticket_numbers:
        if session.get(RosterEntry, ticket_number) is None:
            session.add(RosterEntry(ticket_number=ticket_number, candidate_id=event.candidate_id,
                                    full_name=event.full_name,
                                    resident_id_number_masked=event.resident_id_number_masked))


def merge_tickets(session: Session, event: TicketsMergedV1) -> None:
    """Results move to the primary number. A result that clashes with one already under the primary
    number for the same program and sitting stays where it is (nothing is ever deleted) and is logged."""
    primary = event.primary_ticket_number
    for ticket_number in event.merged_ticket_numbers:
        entry = session.get(RosterEntry, ticket_number, with_for_update=True)
        if entry is not None:
            entry.merged_into = primary
        for result in session.scalars(select(ExamResult).where(ExamResult.ticket_number == ticket_number)
                                      .with_for_update()).all():
            clash = session.execute(select(ExamResult.result_id).where(
                ExamResult.ticket_number == primary, ExamResult.program_code == result.program_code,
                ExamResult.course_code == result.course_code, ExamResult.sitting == result.sitting)).first()
            if clash:
                log.warning("result %s stays under merged ticket: %s already has %s %s", result.result_id,
                            "the primary ticket", result.program_code, result.sitting)
                continue
            result.ticket_number = primary


def record_results(session: Session, request: RecordResults, actor: str = "system") -> RecordResultsOutcome:
    """All lines or none: one bad line rejects the whole batch, so a clerk can fix and resend it."""
    programs = {p.program_code: p for p in session.scalars(select(Program))}
    tickets = {line.ticket_number for line in request.results}
    roster = {
        r.ticket_number: r
        for r in session.scalars(select(RosterEntry).where(RosterEntry.ticket_number.in_(tickets)))
    }
    problems = []
    for index, line in enumerate(request.results):
        if line.program_code not in programs:
            problems.append({"field": f"results.{index}.program_code", "message": "unknown program"})
        elif programs[line.program_code].kind == "course_based":
            problems.append({"field": f"results.{index}.program_code",
                             "message": "course results are recorded per course: use the result import"})
        if line.ticket_number not in roster:
            problems.append({"field": f"results.{index}.ticket_number", "message": "unknown ticket number"})
    if problems:
        code = "unknown_ticket_number" if all("ticket" in p["field"] for p in problems) else "invalid_results"
        raise InvalidInput(code, f"{len(problems)} line(s) rejected; nothing was recorded.", problems)

    now = utcnow()
    for line in request.results:
        # a result recorded under a merged ticket number belongs under the candidate's primary number
        ticket_number = roster[line.ticket_number].merged_into or line.ticket_number
        existing = session.execute(
            select(ExamResult).where(ExamResult.ticket_number == ticket_number,
                                     ExamResult.program_code == line.program_code,
                                     ExamResult.course_code == "", ExamResult.sitting == line.sitting)
            .with_for_update()  # a concurrent publication must not slip between the check and the update
        ).scalar_one_or_none()
        if existing is not None:
            if existing.published_at is not None:
                raise Conflict("result_already_published",
                               f"The result for ticket {line.ticket_number} in {line.sitting} is already "
                               "published; use a score review to change it. Nothing was recorded.")
            if existing.final_score != line.final_score:
                audit(session, existing, actor, "corrected", before={"final_score": existing.final_score},
                      after={"final_score": line.final_score}, reason="re-recorded before publication")
            if domain.sign_offs_lapse(existing.evaluation_state, existing.final_score, line.final_score):
                # the experts signed a different score: their sign-offs no longer apply
                session.execute(delete(ResultEvaluation).where(ResultEvaluation.result_id == existing.result_id))
                existing.evaluation_state, existing.evaluated_outcome = "pending", None
            existing.final_score = line.final_score
            existing.recorded_at = now
            continue
        result = ExamResult(result_id=str(uuid.uuid4()), ticket_number=ticket_number,
                            candidate_id=roster[line.ticket_number].candidate_id,
                            program_code=line.program_code, course_code="", sitting=line.sitting,
                            final_score=line.final_score, recorded_at=now,
                            evaluation_state="pending" if programs[line.program_code].kind == "composite" else None)
        session.add(result)
        audit(session, result, actor, "recorded", after={"final_score": line.final_score})
    return RecordResultsOutcome(recorded=len(request.results))


def publish_results(session: Session, request: PublishResults, actor: str = "system",
                    now: datetime | None = None) -> PublishResultsOutcome:
    """Lift the embargo on a sitting now, or schedule it (a timer in the service publishes it when due)."""
    now = now or utcnow()
    program = session.get(Program, request.program_code)
    if program is None:
        raise NotFound("program_not_found", f"No program {request.program_code}.")
    publish_at = request.publish_at or now
    release = Release(release_id=str(uuid.uuid4()), program_code=program.program_code, sitting=request.sitting,
                      publish_at=publish_at, state="scheduled", published=0, created_by=actor, created_at=now)
    session.add(release)
    if publish_at > now:
        return PublishResultsOutcome(program_code=program.program_code, sitting=request.sitting,
                                     release_id=release.release_id, state="scheduled", publish_at=publish_at)
    return _publish(session, program, release, actor, now)


def publish_due_releases(session: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    due = session.scalars(select(Release).where(Release.state == "scheduled", Release.publish_at <= now)
                          .order_by(Release.publish_at).with_for_update()).all()
    for release in due:
        _publish(session, session.get(Program, release.program_code), release, release.created_by, now)
    return len(due)


def _publish(session: Session, program: Program, release: Release, actor: str,
             now: datetime) -> PublishResultsOutcome:
    pending = session.scalars(
        select(ExamResult).where(ExamResult.program_code == program.program_code,
                                 ExamResult.sitting == release.sitting,
                                 ExamResult.published_at.is_(None))
        .with_for_update()  # two concurrent publications must not both publish a result
    ).all()
    awaiting = [r for r in pending if r.evaluation_state in ("pending", "held")]
    pending = [r for r in pending if r.evaluation_state not in ("pending", "held")]
    now = utcnow()
    passed = 0
    rules = domain.CompositeRules.from_json(program.rules_json) if program.rules_json else None
    courses = {c.course_code: c for c in session.scalars(select(Course).where(
        Course.program_code == program.program_code))}
    # only course-based programs complete by graduation; composite ones need no look-up per candidate
    graduated_before = ({c: _graduated(session, c, program, courses) for c in {r.candidate_id for r in pending}}
                        if program.kind == "course_based" else {})
    for result in pending:
        result.outcome = result.evaluated_outcome or _outcome(result, program, rules, courses)
        result.published_at = now
        audit(session, result, actor, "published", before={"published": False},
              after={"published": True, "outcome": result.outcome})
        outbox.add(session, ResultPublishedV1(
            result_id=result.result_id, candidate_id=result.candidate_id, ticket_number=result.ticket_number,
            program_code=result.program_code, sitting=result.sitting, final_score=result.final_score,
            outcome=result.outcome, published_at=now), subject=result.candidate_id)
        if result.outcome == "passed":
            passed += 1
        if result.outcome == "passed" and program.kind != "course_based":
            holder = session.get(RosterEntry, result.ticket_number)
            outbox.add(session, CandidateQualifiedV1(
                result_id=result.result_id, candidate_id=result.candidate_id,
                ticket_number=result.ticket_number, full_name=holder.full_name,
                resident_id_number_masked=holder.resident_id_number_masked,
                program_code=program.program_code, program_name=program.program_name,
                sitting=result.sitting, final_score=result.final_score, qualified_at=now,
                level=program.level), subject=result.candidate_id)
    if program.kind == "course_based":
        session.flush()
        for candidate_id, before in graduated_before.items():
            if not before and _graduated(session, candidate_id, program, courses):
                _qualify_by_graduation(session, candidate_id, program, now)
    release.state, release.published, release.published_at = "published", len(pending), now
    return PublishResultsOutcome(program_code=program.program_code, sitting=release.sitting,
                                 release_id=release.release_id, state="published", publish_at=release.publish_at,
                                 published=len(pending), passed=passed, failed=len(pending) - passed,
                                 awaiting_evaluation=len(awaiting))


def _outcome(result: ExamResult, program: Program, rules, courses: dict) -> str:
    return outcome_of(result, program, rules, courses, result.final_score)


def outcome_of(result: ExamResult, program: Program, rules: domain.CompositeRules | None, courses: dict,
               final_score: int) -> str:
    """``result`` judged at ``final_score`` by domain.result_outcome (the one rule, also used by a re-check)."""
    course = courses.get(result.course_code) if program.kind == "course_based" else None
    marks = domain.CompositeMarks(**json.loads(result.components_json)) if result.components_json else None
    return domain.result_outcome(program.kind, final_score, course.pass_mark if course else program.pass_mark,
                                 rules, marks)


def _graduated(session: Session, candidate_id: str, program: Program, courses: dict) -> bool:
    """Retakes are allowed: a course counts once it has been passed at any sitting."""
    passed = set(session.scalars(select(ExamResult.course_code).where(
        ExamResult.candidate_id == candidate_id, ExamResult.program_code == program.program_code,
        ExamResult.published_at.is_not(None), ExamResult.outcome == "passed")))
    passed |= set(session.scalars(select(CourseExemption.course_code).where(
        CourseExemption.candidate_id == candidate_id, CourseExemption.program_code == program.program_code)))
    return domain.graduated({code for code, c in courses.items() if c.required}, passed)


def graduation_id(candidate_id: str, program_code: str) -> str:
    """The qualification id of a course-based program's completion: the same every time it is computed."""
    return str(uuid.uuid5(GRADUATION_NAMESPACE, f"{candidate_id}:{program_code}"))


def _qualify_by_graduation(session: Session, candidate_id: str, program: Program, now) -> None:
    last = session.scalars(select(ExamResult).where(
        ExamResult.candidate_id == candidate_id, ExamResult.program_code == program.program_code,
        ExamResult.outcome == "passed").order_by(ExamResult.sitting.desc())).first()
    holder = (session.get(RosterEntry, last.ticket_number) if last is not None else session.scalars(
        select(RosterEntry).where(RosterEntry.candidate_id == candidate_id, RosterEntry.merged_into.is_(None))).first())
    if holder is None:
        log.error("candidate %s completed %s but has no ticket number here", candidate_id, program.program_code)
        return
    # a stable id: certificates issues one certificate per graduation, however often this is sent
    outbox.add(session, CandidateQualifiedV1(
        result_id=graduation_id(candidate_id, program.program_code),
        candidate_id=candidate_id,
        ticket_number=holder.ticket_number, full_name=holder.full_name,
        resident_id_number_masked=holder.resident_id_number_masked, program_code=program.program_code,
        program_name=program.program_name, sitting=last.sitting if last else now.strftime("%Y-%m"),
        final_score=last.final_score if last else 100, qualified_at=now, level=program.level),
        subject=candidate_id)


def audit(session: Session, result: ExamResult, actor: str, action: str, before: dict | None = None,
          after: dict | None = None, reason: str | None = None) -> None:
    session.add(ResultAudit(result_id=result.result_id, at=utcnow(), actor=actor, action=action,
                            before_json=json.dumps(before) if before is not None else None,
                            after_json=json.dumps(after) if after is not None else None, reason=reason))


def recorders_of(session: Session, result: ExamResult) -> set[str]:
    """Who recorded the result (domain.recorders): the actors of its score-setting history, and the importer of the
    file it came in."""
    changes = session.execute(select(ResultAudit.action, ResultAudit.actor).where(
        ResultAudit.result_id == result.result_id, ResultAudit.action.in_(domain.SCORE_SETTING_ACTIONS))).all()
    batch = session.get(ImportBatch, result.batch_id) if result.batch_id else None
    return domain.recorders([(action, actor) for action, actor in changes], batch.created_by if batch else None)


def result_history(session: Session, result_id: str) -> list[dict]:
    rows = session.scalars(select(ResultAudit).where(ResultAudit.result_id == result_id)
                           .order_by(ResultAudit.audit_id)).all()
    if not rows and session.get(ExamResult, result_id) is None:
        raise NotFound("result_not_found", "No such result.")
    return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action,
             "before": json.loads(r.before_json) if r.before_json else None,
             "after": json.loads(r.after_json) if r.after_json else None, "reason": r.reason} for r in rows]


def results_for_candidate(session: Session, candidate_id: str) -> ResultList:
    return results_for_candidates(session, [candidate_id])[candidate_id]


# What a candidate's result list reads, built once (an expanding parameter for the candidates): the busiest read
# on release day, so Core rows instead of ORM entities, as public checks do (docs/performance.md "Result reading").
_RESULTS = ExamResult.__table__
RESULTS_OF_CANDIDATES = (
    select(_RESULTS.c.candidate_id, _RESULTS.c.result_id, _RESULTS.c.ticket_number, _RESULTS.c.program_code,
           Program.__table__.c.program_name, _RESULTS.c.course_code, _RESULTS.c.sitting, _RESULTS.c.outcome,
           _RESULTS.c.final_score, _RESULTS.c.published_at, Program.__table__.c.review_window_days)
    .join(Program.__table__, Program.__table__.c.program_code == _RESULTS.c.program_code)
    .where(_RESULTS.c.candidate_id.in_(bindparam("candidates", expanding=True)))
    .order_by(_RESULTS.c.candidate_id, _RESULTS.c.sitting, _RESULTS.c.program_code))


def results_for_candidates(connection: Session | Connection, candidate_ids: list[str]) -> dict[str, ResultList]:
    """Each candidate's results, for many candidates in one query (the gateway batches the reads that arrive
    together on release day). ``connection``: a session, or a connection (the service reads on an autocommit
    one: a single statement needs no transaction)."""
    found: dict[str, list[ResultView]] = {candidate_id: [] for candidate_id in candidate_ids}
    for (candidate_id, result_id, ticket_number, program_code, program_name, course_code, sitting, outcome,
         final_score, published_at, review_window_days) in connection.execute(
            RESULTS_OF_CANDIDATES, {"candidates": sorted(found)}):
        published = published_at is not None
        found[candidate_id].append(ResultView(
            result_id=result_id, ticket_number=ticket_number, program_code=program_code, program_name=program_name,
            course_code=course_code or None, sitting=sitting, status=domain.visible_status(published, outcome),
            final_score=final_score if published else None, published_at=published_at,
            review_window_ends_at=domain.review_window_ends_at(published_at, review_window_days)))
    return {candidate_id: ResultList(results=views) for candidate_id, views in found.items()}


def list_programs(session: Session) -> dict:
    views = []
    for program in session.scalars(select(Program).order_by(Program.program_code)):
        courses = session.scalars(select(Course).where(Course.program_code == program.program_code)
                                  .order_by(Course.course_code)).all()
        if program.kind == "course_based":
            rules = (f"Each course passes at its own pass mark (usually {program.pass_mark}); retakes allowed, no "
                     "make-up exam; complete when every required course has been passed.")
        else:
            rules = domain.CompositeRules.from_json(program.rules_json).describe() if program.rules_json else \
                f"passed at {program.pass_mark} or more."
        views.append(ProgramView(program_code=program.program_code, program_name=program.program_name,
                                 kind=program.kind, level=program.level, pass_mark=program.pass_mark, rules=rules,
                                 review_window_days=program.review_window_days,
                                 courses=[CourseView.model_validate(c, from_attributes=True) for c in courses]))
    return ProgramList(programs=views).model_dump(mode="json")


# --- expert evaluation ------------------------------------------------------------------------------

def _evaluable(session: Session, result_id: str) -> ExamResult:
    result = session.get(ExamResult, result_id, with_for_update=True)
    if result is None:
        raise NotFound("result_not_found", "No such result.")
    domain.refuse_unless_evaluable(result.evaluation_state, result.published_at is not None)
    return result


def evaluate_result(session: Session, result_id: str, reviewer: str, decision: str) -> dict:
    """One expert's sign-off; what it leads to and what is refused is domain.sign_off's."""
    result = _evaluable(session, result_id)
    decisions = {e.reviewer: e.decision for e in session.scalars(
        select(ResultEvaluation).where(ResultEvaluation.result_id == result_id))}
    before = result.evaluation_state
    result.evaluation_state, result.evaluated_outcome = domain.sign_off(
        before, decisions, reviewer, decision, recorders_of(session, result))
    session.add(ResultEvaluation(result_id=result_id, reviewer=reviewer, decision=decision, decided_at=utcnow()))
    audit(session, result, reviewer, "evaluated", before={"evaluation_state": before},
          after={"evaluation_state": result.evaluation_state, "decision": decision})
    return {"result_id": result_id, "state": result.evaluation_state, "evaluated_outcome": result.evaluated_outcome}


def decide_held_result(session: Session, result_id: str, decider: str, decision: str, reason: str) -> dict:
    """A third expert's decision of a disagreement; the rules are domain.decide_held's."""
    result = _evaluable(session, result_id)
    reviewers = set(session.scalars(select(ResultEvaluation.reviewer).where(ResultEvaluation.result_id == result_id)))
    result.evaluation_state, result.evaluated_outcome = domain.decide_held(
        result.evaluation_state, decider, decision, reviewers, recorders_of(session, result))
    audit(session, result, decider, "decided", before={"evaluation_state": "held"},
          after={"evaluation_state": "decided", "outcome": decision}, reason=reason)
    return {"result_id": result_id, "state": "decided", "evaluated_outcome": decision}


def evaluation_queue(session: Session, program_code: str, sitting: str) -> EvaluationQueue:
    program = session.get(Program, program_code)
    if program is None:
        raise NotFound("program_not_found", f"No program {program_code}.")
    rules = domain.CompositeRules.from_json(program.rules_json) if program.rules_json else None
    results = session.scalars(select(ExamResult).where(
        ExamResult.program_code == program_code, ExamResult.sitting == sitting,
        ExamResult.evaluation_state.is_not(None), ExamResult.published_at.is_(None))
        .order_by(ExamResult.ticket_number)).all()
    signatures: dict[str, list[str]] = {}
    for evaluation in session.scalars(select(ResultEvaluation).where(
            ResultEvaluation.result_id.in_([r.result_id for r in results]))):
        signatures.setdefault(evaluation.result_id, []).append(evaluation.reviewer)
    return EvaluationQueue(items=[EvaluationItem(
        result_id=r.result_id, ticket_number=r.ticket_number, sitting=r.sitting, final_score=r.final_score,
        suggested_outcome=_outcome(r, program, rules, {}), state=r.evaluation_state,
        reviewers=sorted(signatures.get(r.result_id, [])), evaluated_outcome=r.evaluated_outcome) for r in results])


def list_releases(session: Session) -> ReleaseList:
    rows = session.scalars(select(Release).order_by(Release.publish_at.desc()).limit(200)).all()
    return ReleaseList(releases=[ReleaseView.model_validate(r, from_attributes=True) for r in rows])


def cancel_release(session: Session, release_id: str, actor: str) -> ReleaseView:
    release = session.get(Release, release_id, with_for_update=True)
    if release is None:
        raise NotFound("release_not_found", "No such release.")
    if release.state != "scheduled":
        raise Conflict("release_not_scheduled",
                       f"Only a scheduled release can be cancelled; this one is {release.state}.")
    release.state = "cancelled"
    log.info("release %s cancelled by %s", release_id, actor)
    return ReleaseView.model_validate(release, from_attributes=True)


def record_transfer(session: Session, event: CandidateTransferredV1) -> None:
    if session.get(RegionTransfer, event.transfer_id) is None:
        session.add(RegionTransfer(transfer_id=event.transfer_id, candidate_id=event.candidate_id,
                                   from_region=event.from_region, to_region=event.to_region, reason=event.reason,
                                   transferred_at=event.transferred_at))
