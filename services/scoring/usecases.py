"""Scoring service layer."""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    ResultPublishedV1,
    TicketsLinkedV1,
    TicketsMergedV1,
)
from credence_common.contracts.scoring import (
    CourseView,
    ProgramList,
    ProgramView,
    PublishResults,
    PublishResultsOutcome,
    RecordResults,
    RecordResultsOutcome,
    ResultList,
    ResultView,
)
from credence_common.errors import Conflict, InvalidInput, NotFound
from credence_common.events import utcnow
from credence_common.messaging import Outbox
from services.scoring import domain
from services.scoring.models import Course, ExamResult, OutboxEvent, Program, ResultAudit, RosterEntry

log = logging.getLogger(__name__)
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
                ExamResult.sitting == result.sitting)).first()
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
            existing.final_score = line.final_score
            existing.recorded_at = now
            continue
        result = ExamResult(result_id=str(uuid.uuid4()), ticket_number=ticket_number,
                            candidate_id=roster[line.ticket_number].candidate_id,
                            program_code=line.program_code, course_code="", sitting=line.sitting,
                            final_score=line.final_score, recorded_at=now)
        session.add(result)
        audit(session, result, actor, "recorded", after={"final_score": line.final_score})
    return RecordResultsOutcome(recorded=len(request.results))


def publish_results(session: Session, request: PublishResults, actor: str = "system") -> PublishResultsOutcome:
    program = session.get(Program, request.program_code)
    if program is None:
        raise NotFound("program_not_found", f"No program {request.program_code}.")
    pending = session.scalars(
        select(ExamResult).where(ExamResult.program_code == request.program_code,
                                 ExamResult.sitting == request.sitting,
                                 ExamResult.published_at.is_(None))
        .with_for_update()  # two concurrent publications must not both publish a result
    ).all()
    now = utcnow()
    passed = 0
    rules = domain.CompositeRules.from_json(program.rules_json) if program.rules_json else None
    courses = {c.course_code: c for c in session.scalars(select(Course).where(
        Course.program_code == program.program_code))}
    graduated_before = {c: _graduated(session, c, program, courses) for c in {r.candidate_id for r in pending}}
    for result in pending:
        result.outcome = _outcome(result, program, rules, courses)
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
                sitting=result.sitting, final_score=result.final_score, qualified_at=now),
                subject=result.candidate_id)
    if program.kind == "course_based":
        session.flush()
        for candidate_id, before in graduated_before.items():
            if not before and _graduated(session, candidate_id, program, courses):
                _qualify_by_graduation(session, candidate_id, program, now)
    return PublishResultsOutcome(program_code=request.program_code, sitting=request.sitting,
                                 published=len(pending), passed=passed, failed=len(pending) - passed)


def _outcome(result: ExamResult, program: Program, rules, courses: dict) -> str:
    if program.kind == "course_based":
        course = courses.get(result.course_code)
        return domain.evaluate(result.final_score, course.pass_mark if course else program.pass_mark)
    if result.components_json and rules is not None:
        return domain.composite_outcome(rules, domain.CompositeMarks(**json.loads(result.components_json)))
    return domain.evaluate(result.final_score, program.pass_mark)


def _graduated(session: Session, candidate_id: str, program: Program, courses: dict) -> bool:
    """Retakes are allowed: a course counts once it has been passed at any sitting."""
    passed = set(session.scalars(select(ExamResult.course_code).where(
        ExamResult.candidate_id == candidate_id, ExamResult.program_code == program.program_code,
        ExamResult.published_at.is_not(None), ExamResult.outcome == "passed")))
    return domain.graduated({code for code, c in courses.items() if c.required}, passed)


def _qualify_by_graduation(session: Session, candidate_id: str, program: Program, now) -> None:
    last = session.scalars(select(ExamResult).where(
        ExamResult.candidate_id == candidate_id, ExamResult.program_code == program.program_code,
        ExamResult.outcome == "passed").order_by(ExamResult.sitting.desc())).first()
    holder = session.get(RosterEntry, last.ticket_number)
    # a stable id: certificates issues one certificate per graduation, however often this is sent
    outbox.add(session, CandidateQualifiedV1(
        result_id=f"graduation:{candidate_id}:{program.program_code}"[:36], candidate_id=candidate_id,
        ticket_number=last.ticket_number, full_name=holder.full_name,
        resident_id_number_masked=holder.resident_id_number_masked, program_code=program.program_code,
        program_name=program.program_name, sitting=last.sitting, final_score=last.final_score, qualified_at=now),
        subject=candidate_id)


def audit(session: Session, result: ExamResult, actor: str, action: str, before: dict | None = None,
          after: dict | None = None, reason: str | None = None) -> None:
    session.add(ResultAudit(result_id=result.result_id, at=utcnow(), actor=actor, action=action,
                            before_json=json.dumps(before) if before is not None else None,
                            after_json=json.dumps(after) if after is not None else None, reason=reason))


def result_history(session: Session, result_id: str) -> list[dict]:
    rows = session.scalars(select(ResultAudit).where(ResultAudit.result_id == result_id)
                           .order_by(ResultAudit.audit_id)).all()
    if not rows and session.get(ExamResult, result_id) is None:
        raise NotFound("result_not_found", "No such result.")
    return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action,
             "before": json.loads(r.before_json) if r.before_json else None,
             "after": json.loads(r.after_json) if r.after_json else None, "reason": r.reason} for r in rows]


def results_for_candidate(session: Session, candidate_id: str) -> ResultList:
    rows = session.execute(
        select(ExamResult, Program.program_name)
        .join(Program, Program.program_code == ExamResult.program_code)
        .where(ExamResult.candidate_id == candidate_id)
        .order_by(ExamResult.sitting, ExamResult.program_code)
    ).all()
    views = []
    for result, program_name in rows:
        published = result.published_at is not None
        views.append(ResultView(
            result_id=result.result_id, ticket_number=result.ticket_number,
            program_code=result.program_code, program_name=program_name, sitting=result.sitting,
            status=domain.visible_status(published, result.outcome),
            final_score=result.final_score if published else None,
            published_at=result.published_at))
    return ResultList(results=views)


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
                                 kind=program.kind, pass_mark=program.pass_mark, rules=rules,
                                 courses=[CourseView.model_validate(c, from_attributes=True) for c in courses]))
    return ProgramList(programs=views).model_dump(mode="json")
