"""Scoring service layer."""

from __future__ import annotations

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
from services.scoring.models import ExamResult, OutboxEvent, Program, RosterEntry

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


def record_results(session: Session, request: RecordResults) -> RecordResultsOutcome:
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
                                     ExamResult.sitting == line.sitting)
            .with_for_update()  # a concurrent publication must not slip between the check and the update
        ).scalar_one_or_none()
        if existing is not None:
            if existing.published_at is not None:
                raise Conflict("result_already_published",
                               f"The result for ticket {line.ticket_number} in {line.sitting} is already "
                               "published; use a score review to change it. Nothing was recorded.")
            existing.final_score = line.final_score
            existing.recorded_at = now
            continue
        session.add(ExamResult(result_id=str(uuid.uuid4()), ticket_number=ticket_number,
                               candidate_id=roster[line.ticket_number].candidate_id,
                               program_code=line.program_code, sitting=line.sitting,
                               final_score=line.final_score, recorded_at=now))
    return RecordResultsOutcome(recorded=len(request.results))


def publish_results(session: Session, request: PublishResults) -> PublishResultsOutcome:
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
    for result in pending:
        result.outcome = domain.evaluate(result.final_score, program.pass_mark)
        result.published_at = now
        outbox.add(session, ResultPublishedV1(
            result_id=result.result_id, candidate_id=result.candidate_id, ticket_number=result.ticket_number,
            program_code=result.program_code, sitting=result.sitting, final_score=result.final_score,
            outcome=result.outcome, published_at=now), subject=result.candidate_id)
        if result.outcome == "passed":
            passed += 1
            holder = session.get(RosterEntry, result.ticket_number)
            outbox.add(session, CandidateQualifiedV1(
                result_id=result.result_id, candidate_id=result.candidate_id,
                ticket_number=result.ticket_number, full_name=holder.full_name,
                resident_id_number_masked=holder.resident_id_number_masked,
                program_code=program.program_code, program_name=program.program_name,
                sitting=result.sitting, final_score=result.final_score, qualified_at=now),
                subject=result.candidate_id)
    return PublishResultsOutcome(program_code=request.program_code, sitting=request.sitting,
                                 published=len(pending), passed=passed, failed=len(pending) - passed)


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
