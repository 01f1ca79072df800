"""Existing candidates' older admission ticket numbers: import, link, choose a primary, merge."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput
from credence_common.contracts.events import TicketsMergedV1
from credence_common.contracts.identity import HeldTicket, ImportLegacyTickets, ImportOutcome, MyTickets
from services.identity import domain
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.models import Candidate, LegacyTicket
from services.identity.usecases import get_candidate, link_legacy_tickets, outbox


def import_legacy(session: Session, protection: PersonalDataProtection, request: ImportLegacyTickets,
                  now: datetime | None = None) -> ImportOutcome:
    """All lines or none. A ticket whose holder is already a confirmed candidate is linked at once."""
    now = now or utcnow()
    problems: list[dict[str, str]] = []
    rows: list[LegacyTicket] = []
    for position, line in enumerate(request.tickets):
        try:
            resident_id_number = domain.normalise_resident_id(line.resident_id_number, today=now.date())
        except InvalidInput:
            problems.append({"field": f"tickets.{position}.resident_id_number", "message": "not a valid ID number"})
            continue
        if not domain.is_valid_ticket_number(line.ticket_number):
            # the check character catches a typed ticket number's single typo; a typo imported would link an
            # exam history to nobody, or to someone else
            problems.append({"field": f"tickets.{position}.ticket_number",
                             "message": "the check character does not match: a typo?"})
            continue
        taken = (session.get(LegacyTicket, line.ticket_number) is not None
                 or session.execute(select(Candidate.candidate_id).where(
                     Candidate.ticket_number == line.ticket_number)).first() is not None)
        if taken or line.ticket_number in {r.ticket_number for r in rows}:
            problems.append({"field": f"tickets.{position}.ticket_number", "message": "already known"})
            continue
        rows.append(LegacyTicket(ticket_number=line.ticket_number, exam_region=line.exam_region, status="unclaimed",
                                 resident_id_index=protection.index(resident_id_number, "resident_id"),
                                 imported_at=now))
    if problems:
        raise InvalidInput("invalid_legacy_tickets", f"{len(problems)} line(s) rejected; nothing was imported.",
                           problems)
    session.add_all(rows)
    session.flush()
    linked = 0
    for resident_id_index in {r.resident_id_index for r in rows}:
        candidate = session.execute(select(Candidate).where(Candidate.resident_id_index == resident_id_index,
                                                            Candidate.status == "confirmed")).scalar_one_or_none()
        if candidate is not None:
            linked += link_legacy_tickets(session, candidate, now)
    return ImportOutcome(imported=len(rows), linked_to_confirmed_candidates=linked)


def my_tickets(session: Session, candidate_id: str) -> MyTickets:
    candidate = get_candidate(session, candidate_id)
    others = session.scalars(select(LegacyTicket).where(LegacyTicket.candidate_id == candidate_id)
                             .order_by(LegacyTicket.ticket_number)).all()
    return MyTickets(primary_ticket_number=candidate.ticket_number,
                     other_tickets=[HeldTicket(ticket_number=t.ticket_number, status=t.status,
                                               merged_into=t.merged_into) for t in others])


def choose_primary(session: Session, candidate_id: str, ticket_number: str) -> MyTickets:
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.ticket_number == ticket_number:
        return my_tickets(session, candidate_id)
    if session.execute(select(LegacyTicket.ticket_number).where(LegacyTicket.candidate_id == candidate_id,
                                                                LegacyTicket.status == "merged")).first():
        # results were moved onto the current primary; moving the primary now would strand them
        raise Conflict("primary_fixed_after_merge",
                       "Other tickets were already merged into your primary ticket number; it cannot change now.")
    chosen = session.get(LegacyTicket, ticket_number, with_for_update=True)
    if chosen is None or chosen.candidate_id != candidate_id or chosen.status != "held":
        raise InvalidInput("not_your_ticket", "Choose one of your own ticket numbers that is not merged.",
                           [{"field": "ticket_number", "message": "not one of your held tickets"}])
    former = candidate.ticket_number
    session.delete(chosen)
    session.flush()
    candidate.ticket_number = ticket_number
    session.flush()
    session.add(LegacyTicket(ticket_number=former, resident_id_index=candidate.resident_id_index,
                             exam_region=candidate.exam_region, candidate_id=candidate_id, status="held",
                             imported_at=utcnow()))
    return my_tickets(session, candidate_id)


def merge(session: Session, candidate_id: str, ticket_numbers: list[str], now: datetime | None = None) -> MyTickets:
    now = now or utcnow()
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.ticket_number is None:
        raise Conflict("not_confirmed", "Only a confirmed candidate with a ticket number can merge tickets.")
    wanted = sorted(set(ticket_numbers))
    rows = session.scalars(select(LegacyTicket).where(LegacyTicket.ticket_number.in_(wanted))
                           .with_for_update()).all()
    mine = {t.ticket_number: t for t in rows if t.candidate_id == candidate_id and t.status == "held"}
    refused = [n for n in wanted if n not in mine]
    if refused:
        raise InvalidInput("not_your_ticket", "Only your own, not yet merged, other ticket numbers can be merged; "
                                              "nothing was merged.",
                           [{"field": "ticket_numbers", "message": f"{len(refused)} cannot be merged"}])
    for ticket in mine.values():
        ticket.status = "merged"
        ticket.merged_into = candidate.ticket_number
    outbox.add(session, TicketsMergedV1(candidate_id=candidate_id, primary_ticket_number=candidate.ticket_number,
                                        merged_ticket_numbers=wanted, merged_at=now), subject=candidate_id)
    return my_tickets(session, candidate_id)
