"""Online identity confirmation through a vendor's liveness session (IDENTITY_VERIFIER=tencent_faceid).

1. ``start``: the candidate's name and ID number are checked against the national registry, then a liveness
   session is opened for them at the vendor; its BizToken is kept here, encrypted, bound to the candidate, and the
   candidate gets the vendor's page to open.
2. ``confirm``: the vendor's page sends the candidate back with the BizToken; it is believed only if it is one of
   this candidate's own sessions, not used before. The vendor's result becomes at most one decision per session;
   a second click (or a concurrent one) answers the same candidate view, so the same ticket number.

Nothing is decided while the vendor cannot answer: the vendor is called between transactions (no lock is held
while it is slow), and an outage (``VerifierUnavailable``) is 503 ``identity_verifier_unavailable`` with nothing
written; an Idempotency-Key's record of that attempt is dropped too, so a retry with the same key asks again instead
of replaying "unavailable".
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, NotFound, RateLimited, ServiceUnavailable
from credence_common.contracts.identity import CandidateView, IdentitySessionView
from credence_common.persistence.idempotency import forget_attempt
from services.identity.adapters.faceid import (
    SESSION_RESULT_TTL_SECONDS,
    IdCardCheck,
    SessionResult,
    VerifierUnavailable,
)
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.domain import codes
from services.identity.models import IdentityLivenessSession
from services.identity.usecases import CommitThenRefuse, _record_decision, candidate_view, get_candidate

log = logging.getLogger(__name__)
TOKEN_INDEX_PURPOSE = "liveness_biz_token"
MAX_SESSIONS_PER_DAY = 5  # each session (and its registry check) is billed by the vendor


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "identity_verifier_unavailable",
        "Online identity confirmation is not available right now: the verification service does not answer. "
        "Nothing was recorded. Try again later, or have your identity confirmed on site at an exam centre.")


def sessions_not_offered() -> Conflict:
    return Conflict("liveness_sessions_not_offered", "Online confirmation here takes the ID card image and liveness "
                    "references (POST /api/v1/me/identity-confirmation), not a liveness session.")


def session_required() -> Conflict:
    return Conflict("liveness_session_required", "Online confirmation here goes through a liveness session: start "
                    "one (POST /api/v1/me/identity-confirmation/sessions), open its url, then confirm with the "
                    "token it returns.")


def outage(error: VerifierUnavailable, db) -> ServiceUnavailable:
    # no personal data: the vendor's action and code only (the adapter logged its RequestId)
    log.warning("online identity confirmation unavailable: %s answered %s; nothing recorded", error.action,
                error.code)
    forget_attempt(db)
    return unavailable()


@dataclass(frozen=True)
class Subject:
    candidate_id: str
    full_name: str
    resident_id_number: str
    session_id: str | None = None
    biz_token: str | None = None


STARTING_INDEX_PREFIX = "starting:"  # a placeholder's token index: never a keyed index (those are hex)


def subject_for_new_session(session: Session, protection: PersonalDataProtection, candidate_id: str,
                            max_per_day: int = MAX_SESSIONS_PER_DAY, now: datetime | None = None,
                            session_id: str | None = None) -> Subject:
    """Counts today's attempts and, under the candidate's row lock, books this one as a ``starting`` row before
    any vendor call: both billed calls (the registry check and the session) count against the daily limit, a
    refused registry check too, and two concurrent starts cannot both pass the last free place. The row becomes
    the session (record_session), a refusal (registry_refusal), or goes (an outage: forget_start)."""
    now = now or utcnow()
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.status == "confirmed":
        raise Conflict("already_confirmed", "This candidate's identity is already confirmed.")
    day_start = codes.start_of_day(now)  # the same day as the texted codes' daily limits
    opened_today = session.scalar(select(func.count()).select_from(IdentityLivenessSession).where(
        IdentityLivenessSession.candidate_id == candidate_id, IdentityLivenessSession.created_at >= day_start))
    if opened_today >= max_per_day:
        seconds = int((day_start + timedelta(days=1) - now).total_seconds()) + 1
        raise RateLimited.after(seconds, "identity_session_daily_limit", f"At most {max_per_day} liveness sessions "
                                "a day; try again tomorrow, or have your identity confirmed on site.")
    session_id = session_id or new_session_id()
    session.add(IdentityLivenessSession(
        session_id=session_id, candidate_id=candidate_id, verifier="", status="starting",
        biz_token_index=STARTING_INDEX_PREFIX + session_id, biz_token_encrypted="", created_at=now, expires_at=now))
    return Subject(candidate_id, candidate.full_name, protection.decrypt(candidate.resident_id_encrypted),
                   session_id)


def forget_start(db, session_id: str) -> None:
    """An outage asked nothing billable of the candidate's day: the booked attempt goes."""
    with db.transaction() as session:
        session.execute(delete(IdentityLivenessSession).where(IdentityLivenessSession.session_id == session_id,
                                                              IdentityLivenessSession.status == "starting"))


def registry_refusal(session: Session, candidate_id: str, check: IdCardCheck, verifier: str,
                     now: datetime | None = None, session_id: str | None = None) -> CandidateView:
    """The registry does not know this name and number together: recorded as a rejection (the candidate may try
    again after correcting it, or confirm on site) when the answer is a verdict. The refusal commits what it
    recorded (``CommitThenRefuse``): the booked attempt, counted against the daily limit, and the rejection."""
    now = now or utcnow()
    candidate = get_candidate(session, candidate_id, for_update=True)
    if session_id is not None:  # the booked attempt stays, counted: the registry check was made (and billed)
        session.execute(update(IdentityLivenessSession).where(IdentityLivenessSession.session_id == session_id)
                        .values(status="refused", verifier=verifier))
    if candidate.status == "confirmed":
        return candidate_view(candidate)
    if check.rejection is None:  # -2 / -3: the registry cannot check this name or number at all
        raise CommitThenRefuse(InvalidInput("online_check_not_possible", "Your name or ID number cannot be checked "
                                            "online; have your identity confirmed on site at an exam centre."))
    _record_decision(session, candidate, "online", False, check.rejection, verifier, f"verifier:{verifier}", now)
    raise CommitThenRefuse(InvalidInput(
        "identity_registry_mismatch", "The name and ID number you registered do not match the national registry. "
        "Have your identity confirmed on site at an exam centre.", [{"field": "reason", "message": check.rejection}]))


def record_session(session: Session, protection: PersonalDataProtection, subject: Subject, session_id: str,
                   verifier: str, url: str, biz_token: str, now: datetime | None = None) -> IdentitySessionView:
    now = now or utcnow()
    expires_at = now + timedelta(seconds=SESSION_RESULT_TTL_SECONDS)
    values = dict(verifier=verifier, biz_token_index=protection.index(biz_token, TOKEN_INDEX_PURPOSE),
                  biz_token_encrypted=protection.encrypt(biz_token), status="open", expires_at=expires_at)
    booked = session.execute(update(IdentityLivenessSession).where(
        IdentityLivenessSession.session_id == session_id, IdentityLivenessSession.status == "starting")
        .values(**values))
    if booked.rowcount == 0:  # not booked through subject_for_new_session (a caller of its own)
        session.add(IdentityLivenessSession(session_id=session_id, candidate_id=subject.candidate_id, created_at=now,
                                            **values))
    return IdentitySessionView(session_id=session_id, url=url, expires_at=expires_at, verifier=verifier)


def new_session_id() -> str:
    return str(uuid.uuid4())


def _not_found() -> NotFound:
    # the same answer for a token that does not exist and for another candidate's: it reveals nothing
    return NotFound("liveness_session_not_found", "No liveness session of yours has this token; start a new one.")


def subject_for_confirmation(session: Session, protection: PersonalDataProtection, candidate_id: str,
                             biz_token: str, now: datetime | None = None) -> Subject | CandidateView:
    """The session the token names, if it is this candidate's and still open; the candidate view when they are
    confirmed already (a second click shows the same ticket number)."""
    now = now or utcnow()
    row = session.execute(select(IdentityLivenessSession).where(
        IdentityLivenessSession.biz_token_index == protection.index(biz_token, TOKEN_INDEX_PURPOSE))
    ).scalar_one_or_none()
    if row is None or row.candidate_id != candidate_id:
        raise _not_found()
    candidate = get_candidate(session, candidate_id)
    if candidate.status == "confirmed":
        return candidate_view(candidate)
    _check_open(row, now)
    return Subject(candidate_id, candidate.full_name, protection.decrypt(candidate.resident_id_encrypted),
                   row.session_id, protection.decrypt(row.biz_token_encrypted))


def _check_open(row: IdentityLivenessSession, now: datetime) -> None:
    if row.status != "open":
        raise Conflict("liveness_session_used", "This liveness session has already given its result; start a new "
                       "one to try again.")
    if row.expires_at <= now:
        raise Conflict("liveness_session_expired", "This liveness session has expired; start a new one.")


def pending() -> Conflict:
    return Conflict("liveness_not_completed", "The liveness check is not finished: complete it in the page you "
                    "opened, or start a new session. Nothing was recorded.")


def decide(session: Session, subject: Subject, result: SessionResult, verifier: str,
           now: datetime | None = None) -> CandidateView:
    """At most one decision per session, under the candidate's lock (the same lock as every other decision). A
    session the vendor calls expired or inconclusive is closed as such, and that refusal commits the closing
    (``CommitThenRefuse``)."""
    now = now or utcnow()
    candidate = get_candidate(session, subject.candidate_id, for_update=True)
    row = session.get(IdentityLivenessSession, subject.session_id, with_for_update=True)
    if candidate.status == "confirmed":
        return candidate_view(candidate)  # a concurrent click confirmed it: the same ticket number
    _check_open(row, now)
    if result.kind == "expired":
        row.status, row.decided_at = "expired", now
        raise CommitThenRefuse(Conflict("liveness_session_expired", "This liveness session has expired at the "
                                        "verification service; start a new one."))
    if result.kind not in ("approved", "rejected"):
        row.status, row.decided_at = "inconclusive", now
        raise CommitThenRefuse(Conflict(
            "liveness_inconclusive", "The verification service could not reach a result for this session (nothing "
            "was recorded against you); start a new session, or have your identity confirmed on site at an exam "
            "centre."))
    approved = result.kind == "approved"
    _record_decision(session, candidate, "online", approved, result.reason, verifier, f"verifier:{verifier}", now,
                     liveness_ref=f"{verifier}:{row.session_id}", face_match_score=result.face_match_score)
    row.status, row.decided_at = ("approved" if approved else "rejected"), now
    return candidate_view(candidate)


# --- the two steps, each around its vendor call -----------------------------------------------------------
# Unlike the functions above, these two take the unit of work (``db``) rather than a session: the vendor is called
# between two transactions, so that a slow vendor holds no database connection and no lock.

def start(db, protection: PersonalDataProtection, verifier, candidate_id: str) -> IdentitySessionView | CandidateView:
    """Checks the name and ID number at the national registry, then opens a liveness session at the vendor. The
    attempt is booked before the vendor is asked (``subject_for_new_session``), forgotten on an outage, and kept,
    refused, when the registry does not know the name and number together (``registry_refusal``)."""
    if not getattr(verifier, "supports_sessions", False):
        raise sessions_not_offered()
    with db.transaction() as session:
        subject = subject_for_new_session(session, protection, candidate_id,
                                          getattr(verifier, "max_sessions_per_day", MAX_SESSIONS_PER_DAY))
    session_id = subject.session_id
    try:
        check = verifier.check_id_card(subject.full_name, subject.resident_id_number)
        opened = verifier.start_session(subject.full_name, subject.resident_id_number, session_id) \
            if check.matches else None
    except VerifierUnavailable as error:
        forget_start(db, session_id)
        raise outage(error, db) from None
    with db.transaction() as session:
        if opened is None:
            return registry_refusal(session, candidate_id, check, verifier.name, session_id=session_id)
        return record_session(session, protection, subject, session_id, verifier.name, opened.url,
                              opened.biz_token)


def confirm(db, protection: PersonalDataProtection, verifier, candidate_id: str, biz_token: str) -> CandidateView:
    """The liveness session's result as the candidate's decision: once per session, this candidate's only."""
    if not getattr(verifier, "supports_sessions", False):
        raise sessions_not_offered()
    with db.transaction() as session:
        subject = subject_for_confirmation(session, protection, candidate_id, biz_token)
    if not isinstance(subject, Subject):
        return subject  # confirmed already: the same ticket number
    try:
        result = verifier.session_result(subject.biz_token, subject.full_name, subject.resident_id_number)
    except VerifierUnavailable as error:
        raise outage(error, db) from None
    if result.kind == "pending":
        forget_attempt(db)  # not an answer to replay: the candidate may finish the page
        raise pending()
    with db.transaction() as session:
        return decide(session, subject, result, verifier.name)
