"""Identity service layer: each function is one transaction's worth of work on a given session (the unit of
work: the caller commits), and refuses by raising a ``credence_common.contracts.errors`` class, as every service does.

A refusal rolls the unit of work back, except where the refusal itself must be recorded (a failed sign-in
counted, a wrong code's try burnt, a used-up code kept used up, a replayed refresh token's sessions ended): there
the use case raises ``CommitThenRefuse(refusal)``, which identity's unit of work
(``services.identity.dependencies.IdentityDatabase``) commits before it raises the refusal.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credence_common.contracts import staff_roles
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateRegisteredV1,
    CandidateTransferredV1,
    TicketsLinkedV1,
)
from credence_common.contracts.identity import (
    SECURITY_QUESTIONS,
    AuthenticatedPrincipal,
    CandidateView,
    RegisterCandidate,
    StaffAccountList,
    StaffAccountView,
    StaffRoleChangeList,
    StaffRoleChangeView,
    TicketLookupResult,
)
from credence_common.contracts.staff_roles import STAFF_ROLES
from credence_common.persistence.messaging import Outbox
from credence_common.persistence.sequences import next_value
from credence_common.security.masking import mask_email, mask_mobile, mask_resident_id
from services.identity import domain
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.domain import codes, passwords
from services.identity.models import (
    Candidate,
    DevSmsMessage,
    IdentityConfirmation,
    Institution,
    LegacyTicket,
    NumberSequence,
    OneTimeCode,
    OutboxEvent,
    RefreshToken,
    StaffAccount,
    StaffRoleChange,
)
from services.identity.usecases.access import institution_account, staff_account, staff_subject
from services.identity.usecases.throttling import guard, lock

log = logging.getLogger(__name__)
outbox = Outbox(OutboxEvent)


class CommitThenRefuse(Exception):
    """Raised by a use case whose refusal must keep what the call wrote: the guessing limits count a failed
    sign-in (and lock the account at the limit), a wrong code burns one of its tries, a code used up stays used
    up, a replayed refresh token has ended every session. A plain raise would roll all that back, and a guesser
    would get unlimited tries; returning the refusal instead gave identity two error styles.

    Only identity's unit of work knows it (``IdentityDatabase``: it commits, then raises ``refusal``). It is
    deliberately not a ``CredenceError``: a transaction that does not know it fails loudly (a 500 and a test
    failing) instead of answering the refusal and silently losing the count."""

    def __init__(self, refusal: CredenceError):
        super().__init__(refusal)
        self.refusal = refusal
REFRESH_TOKEN_TTL = timedelta(days=30)
# Verifying against this when the account does not exist keeps the response time the same, so
# timing does not reveal which login names are registered.
_DUMMY_HASH = passwords.hash_password("credence-timing-equaliser-2026")
DECOY_QUESTIONS = SECURITY_QUESTIONS
INVALID_CODE = ("invalid_code", "The code is wrong, used or expired; request a new one.")


# --- views ---------------------------------------------------------------------------------------

def candidate_view(candidate: Candidate) -> CandidateView:
    return CandidateView(
        candidate_id=candidate.candidate_id, full_name=candidate.full_name,
        resident_id_number_masked=candidate.resident_id_masked, mobile_masked=candidate.mobile_masked,
        email_masked=candidate.email_masked, exam_region=candidate.exam_region, status=candidate.status,
        rejection_reason=candidate.rejection_reason, ticket_number=candidate.ticket_number,
        confirmation_method=candidate.confirmation_method, institution_id=candidate.institution_id,
        prior_education_status=candidate.prior_education_status,
        has_security_question=candidate.security_question is not None,
        registered_at=candidate.registered_at, confirmed_at=candidate.confirmed_at)


def get_candidate(session: Session, candidate_id: str, for_update: bool = False) -> Candidate:
    candidate = session.get(Candidate, candidate_id, with_for_update=for_update)
    if candidate is None:
        raise NotFound("candidate_not_found", "No such candidate.")
    return candidate


def _candidate_by_mobile(session: Session, protection: PersonalDataProtection, mobile: str) -> Candidate | None:
    index = protection.index(mobile, "mobile")
    return session.execute(select(Candidate).where(Candidate.mobile_index == index)).scalar_one_or_none()


def _candidate_by_login(session: Session, protection: PersonalDataProtection, login: str) -> Candidate | None:
    kind, value = domain.classify_login(login)
    column = Candidate.email_index if kind == "email" else Candidate.mobile_index
    index = protection.index(value, kind)
    return session.execute(select(Candidate).where(column == index)).scalar_one_or_none()


# --- mobile codes ----------------------------------------------------------------------------------

def request_code(session: Session, protection: PersonalDataProtection, sms, mobile: str, purpose: str,
                 client_address: str, now: datetime | None = None) -> dict:
    """The same answer whether or not the number is registered; only registered numbers (or any number,
    for registration) actually receive a text."""
    now = now or utcnow()
    mobile = domain.normalise_mobile(mobile)
    mobile_index = protection.index(mobile, "mobile")
    client_index = protection.index(client_address or "unknown", "client")
    day = codes.start_of_day(now)
    # Serialises requests for one number, so a parallel burst cannot slip past the limits below.
    lock(session, protection, f"codes|{mobile_index}", now)
    if _wrong_tries_today(session, mobile_index, purpose, now) >= codes.MAX_WRONG_TRIES_PER_DAY:
        until_midnight = int((day + timedelta(days=1) - now).total_seconds()) + 1
        raise RateLimited("code_daily_limit", "Too many wrong codes today; try again tomorrow.",
                           [{"field": "retry_after_seconds", "message": str(until_midnight)}])
    last_sent = session.scalar(select(func.max(OneTimeCode.created_at)).where(
        OneTimeCode.mobile_index == mobile_index, OneTimeCode.purpose == purpose))
    to_mobile = session.scalar(select(func.count()).select_from(OneTimeCode).where(
        OneTimeCode.mobile_index == mobile_index, OneTimeCode.created_at >= day))
    from_client = session.scalar(select(func.count()).select_from(OneTimeCode).where(
        OneTimeCode.client_index == client_index, OneTimeCode.created_at >= day))
    refusal = codes.send_refusal(now, last_sent, to_mobile, from_client)
    if refusal is not None:
        raise RateLimited(refusal.code, refusal.message, [{"field": "retry_after_seconds",
                                                             "message": str(refusal.retry_after_seconds)}])
    code = codes.new_code()
    code_id = str(uuid.uuid4())
    session.add(OneTimeCode(code_id=code_id, mobile_index=mobile_index, client_index=client_index, purpose=purpose,
                            code_digest=codes.code_digest(protection.code_key, code_id, mobile_index, purpose, code),
                            created_at=now, expires_at=now + codes.CODE_TTL, wrong_tries=0))
    if purpose == "registration" or _candidate_by_mobile(session, protection, mobile) is not None:
        minutes = str(int(codes.CODE_TTL.total_seconds()) // 60)
        # the rendered text for free-text gateways; the purpose and the template's values ({1} the code, {2} its
        # minutes) for vendors that send only approved templates (SMS_ADAPTER=tencent_sms)
        sms.send(session, mobile, mobile_index,
                 f"[Credence] Your code is {code}. It is valid for {minutes} minutes. Never share it with anyone.",
                 purpose=purpose, params=[code, minutes])
    return {"status": "sent", "expires_in": int(codes.CODE_TTL.total_seconds()),
            "message": "If the number can receive it, a code has been sent."}


def consume_code(session: Session, protection: PersonalDataProtection, mobile: str, purpose: str, code: str,
                 now: datetime | None = None) -> None:
    """Uses the code up when it is right; refuses ``invalid_code`` otherwise. A wrong code burns one of its tries,
    so that refusal commits the count (``CommitThenRefuse``); the others wrote nothing."""
    now = now or utcnow()
    mobile_index = protection.index(mobile, "mobile")
    if _wrong_tries_today(session, mobile_index, purpose, now) >= codes.MAX_WRONG_TRIES_PER_DAY:
        raise InvalidInput(*INVALID_CODE)  # new codes do not buy new guesses
    row = session.execute(
        select(OneTimeCode).where(OneTimeCode.mobile_index == mobile_index, OneTimeCode.purpose == purpose)
        .order_by(OneTimeCode.created_at.desc()).limit(1).with_for_update()
    ).scalar_one_or_none()
    if row is None or not codes.code_is_usable(now, row.expires_at, row.wrong_tries, row.consumed_at):
        raise InvalidInput(*INVALID_CODE)
    expected = codes.code_digest(protection.code_key, row.code_id, mobile_index, purpose, code)
    if not secrets.compare_digest(expected, row.code_digest):
        row.wrong_tries += 1
        raise CommitThenRefuse(InvalidInput(*INVALID_CODE))
    row.consumed_at = now


def _wrong_tries_today(session: Session, mobile_index: str, purpose: str, now: datetime) -> int:
    return session.scalar(select(func.coalesce(func.sum(OneTimeCode.wrong_tries), 0)).where(
        OneTimeCode.mobile_index == mobile_index, OneTimeCode.purpose == purpose,
        OneTimeCode.created_at >= codes.start_of_day(now))) or 0


def dev_sms_messages(session: Session, protection: PersonalDataProtection, mobile: str) -> list[str]:
    index = protection.index(domain.normalise_mobile(mobile), "mobile")
    rows = session.scalars(select(DevSmsMessage.body).where(DevSmsMessage.mobile_index == index)
                           .order_by(DevSmsMessage.message_id.desc()).limit(20))
    return [protection.decrypt(body) for body in rows]


# --- registration ---------------------------------------------------------------------------------

def register_candidate(session: Session, protection: PersonalDataProtection, request: RegisterCandidate,
                       now: datetime | None = None, institution_id: str | None = None) -> CandidateView:
    """``institution_id`` is set only when an institution's staff register their own student (the texted
    code, which the student hands over, is the student's consent)."""
    now = now or utcnow()
    full_name = domain.normalise_full_name(request.full_name)
    resident_id_number = domain.normalise_resident_id(request.resident_id_number, today=now.date())
    mobile = domain.normalise_mobile(request.mobile)
    email = domain.normalise_email(request.email)
    exam_region = domain.check_exam_region(request.exam_region)
    passwords.check_password(request.password, birth_date=domain.birth_date_of(resident_id_number),
                             personal_values=_personal_values(resident_id_number, mobile, email))
    if (request.security_question is None) != (request.security_answer is None):
        raise InvalidInput("invalid_security_question", "Give both a security question and its answer, or neither.")
    if institution_id is not None and session.get(Institution, institution_id) is None:
        raise InvalidInput("unknown_institution", "No training institution has this id.")
    consume_code(session, protection, mobile, "registration", request.mobile_code, now)
    indexes = {"resident_id_index": protection.index(resident_id_number, "resident_id"),
               "mobile_index": protection.index(mobile, "mobile"), "email_index": protection.index(email, "email")}
    taken = session.execute(select(Candidate.candidate_id).where(
        (Candidate.resident_id_index == indexes["resident_id_index"])
        | (Candidate.mobile_index == indexes["mobile_index"])
        | (Candidate.email_index == indexes["email_index"]))).first()
    if taken:
        raise CommitThenRefuse(_already_registered())  # the used-up code stays used up
    candidate = Candidate(
        candidate_id=str(uuid.uuid4()), full_name=full_name,
        resident_id_encrypted=protection.encrypt(resident_id_number),
        resident_id_masked=mask_resident_id(resident_id_number),
        mobile_encrypted=protection.encrypt(mobile), mobile_masked=mask_mobile(mobile),
        email_encrypted=protection.encrypt(email), email_masked=mask_email(email),
        exam_region=exam_region, password_hash=passwords.hash_password(request.password),
        security_question=request.security_question,
        security_answer_hash=(passwords.hash_password(_answer_key(request.security_answer))
                              if request.security_answer else None),
        status="pre_registered", institution_id=institution_id,
        prior_education_status="required" if request.degree_upgrade else "not_required",
        registered_at=now, **indexes)
    session.add(candidate)
    try:
        session.flush()
    except IntegrityError:
        raise _already_registered() from None
    outbox.add(session, CandidateRegisteredV1(candidate_id=candidate.candidate_id, exam_region=exam_region,
                                              registered_at=now), subject=candidate.candidate_id)
    return candidate_view(candidate)


def _already_registered() -> Conflict:
    # Deliberately silent about which detail matched and about the existing account.
    return Conflict("already_registered", "These details are already registered. If this is you, sign in or "
                                          "reset your password.")


def _personal_values(resident_id_number: str, mobile: str, email: str) -> tuple[str, ...]:
    return (resident_id_number, resident_id_number[-6:], mobile, email.split("@")[0])


def _answer_key(answer: str) -> str:
    return " ".join(answer.split()).casefold()


# --- identity confirmation ------------------------------------------------------------------------

def confirm_online(session: Session, protection: PersonalDataProtection, candidate_id: str, id_card_image_ref: str,
                   liveness_ref: str, verifier, now: datetime | None = None) -> CandidateView:
    # Locked: a double click must not hand one candidate two ticket numbers.
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.status == "confirmed":
        return candidate_view(candidate)  # a second click shows the same ticket number
    verdict = verifier.verify(candidate.full_name, protection.decrypt(candidate.resident_id_encrypted),
                              id_card_image_ref, liveness_ref)
    _record_decision(session, candidate, "online", verdict.approved, verdict.reason, verdict.verifier,
                     f"verifier:{verdict.verifier}", now or utcnow(), id_card_image_ref=id_card_image_ref,
                     liveness_ref=liveness_ref, face_match_score=verdict.face_match_score)
    return candidate_view(candidate)


def confirm_on_site(session: Session, candidate_id: str, decided_by: str, approve: bool, reason: str | None,
                    now: datetime | None = None) -> CandidateView:
    """By authority staff, or by an institution's staff for its own students (checked by the caller)."""
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.status == "confirmed":
        raise Conflict("already_confirmed", "This candidate's identity is already confirmed.")
    if not approve and not reason:
        raise InvalidInput("reason_required", "Say why the identity is rejected; the candidate will see it.",
                           [{"field": "reason", "message": "required when rejecting"}])
    _record_decision(session, candidate, "on_site", approve, reason, "staff", decided_by, now or utcnow())
    return candidate_view(candidate)


def _record_decision(session: Session, candidate: Candidate, method: str, approved: bool, reason: str | None,
                     verifier: str, decided_by: str, now: datetime, **evidence) -> None:
    session.add(IdentityConfirmation(confirmation_id=str(uuid.uuid4()), candidate_id=candidate.candidate_id,
                                     method=method, verifier=verifier, decision="approved" if approved else "rejected",
                                     reason=reason, decided_by=decided_by, decided_at=now, **evidence))
    if not approved:
        candidate.status = "rejected"  # the candidate may try again
        candidate.rejection_reason = reason
        return
    while True:  # skip numbers that an imported older ticket already holds
        serial = next_value(session, NumberSequence, domain.ticket_sequence_name(candidate.exam_region, now.year))
        ticket_number = domain.format_ticket_number(candidate.exam_region, now.year, serial)
        if session.get(LegacyTicket, ticket_number) is None:
            break
    candidate.ticket_number = ticket_number
    candidate.status = "confirmed"
    candidate.rejection_reason = None
    candidate.confirmation_method = method
    candidate.confirmed_at = now
    outbox.add(session, CandidateConfirmedV1(
        candidate_id=candidate.candidate_id, ticket_number=candidate.ticket_number, full_name=candidate.full_name,
        resident_id_number_masked=candidate.resident_id_masked, exam_region=candidate.exam_region, method=method,
        confirmed_at=now, institution_id=candidate.institution_id), subject=candidate.candidate_id)
    link_legacy_tickets(session, candidate, now)


def link_legacy_tickets(session: Session, candidate: Candidate, now: datetime) -> int:
    """Give a confirmed candidate the older tickets issued to their ID number; tell scoring."""
    unclaimed = session.scalars(select(LegacyTicket).where(
        LegacyTicket.resident_id_index == candidate.resident_id_index, LegacyTicket.status == "unclaimed")).all()
    for ticket in unclaimed:
        ticket.candidate_id = candidate.candidate_id
        ticket.status = "held"
    if unclaimed:
        outbox.add(session, TicketsLinkedV1(
            candidate_id=candidate.candidate_id, primary_ticket_number=candidate.ticket_number,
            ticket_numbers=sorted(t.ticket_number for t in unclaimed), full_name=candidate.full_name,
            resident_id_number_masked=candidate.resident_id_masked, linked_at=now), subject=candidate.candidate_id)
    return len(unclaimed)


# --- sign-in and sessions -------------------------------------------------------------------------

def issue_refresh_token(session: Session, protection: PersonalDataProtection, subject: str, role: str,
                         now: datetime) -> str:
    token_id, secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
    session.add(RefreshToken(token_id=token_id, subject=subject, role=role,
                             token_digest=protection.token_digest(secret), issued_at=now,
                             expires_at=now + REFRESH_TOKEN_TTL))
    return f"{token_id}.{secret}"


def login(session: Session, protection: PersonalDataProtection, login_name: str, password: str,
          client_address: str | None = None, now: datetime | None = None) -> AuthenticatedPrincipal:
    now = now or utcnow()
    kind, value = domain.classify_login(login_name)
    candidate = _candidate_by_login(session, protection, login_name)
    check_secret(session, protection, "login", f"{kind}:{value}", client_address or "unknown",
                 candidate.password_hash if candidate else None, password, now, "The login name or password is wrong.")
    if passwords.needs_rehash(candidate.password_hash):
        candidate.password_hash = passwords.hash_password(password)
    return AuthenticatedPrincipal(subject=candidate.candidate_id, role="candidate", display_name=candidate.full_name,
                                  refresh_token=issue_refresh_token(session, protection, candidate.candidate_id,
                                                                     "candidate", now))


def check_secret(session: Session, protection: PersonalDataProtection, scope: str, name: str,
                 client_address: str | None, stored_hash: str | None, secret: str, now: datetime,
                 refusal: str) -> None:
    """Every password or security-answer check: slowed by the guessing limits, and equally slow (dummy hash)
    whether or not an account exists. Returns when the secret is right; a wrong one is counted (and locks the
    name at the limit), so that refusal commits the count (``CommitThenRefuse``)."""
    attempts = guard(session, protection, scope, name, client_address, now)
    locked = attempts.refusal(now)
    if locked:
        raise locked  # nothing counted: a locked name's guesses are not even checked
    if not password_matches(stored_hash, secret):
        attempts.failed(now)
        raise CommitThenRefuse(Unauthorized("invalid_credentials", refusal))
    attempts.succeeded()


def password_matches(password_hash: str | None, password: str) -> bool:
    matched = passwords.verify_password(password_hash or _DUMMY_HASH, password)
    return matched and password_hash is not None


def refresh(session: Session, protection: PersonalDataProtection, refresh_token: str,
            now: datetime | None = None) -> AuthenticatedPrincipal:
    """Rotates the token. Presenting a token that was already rotated away means it leaked: every
    session of that subject is revoked."""
    now = now or utcnow()
    token_id, _, secret = refresh_token.partition(".")
    row = session.get(RefreshToken, token_id, with_for_update=True) if token_id else None
    if row is None or not secrets.compare_digest(row.token_digest, protection.token_digest(secret)):
        raise Unauthorized("invalid_refresh_token", "The refresh token is not valid; sign in again.")
    if row.revoked_at is not None:
        revoke_all(session, row.subject, now)  # kept: the refusal must not undo ending the stolen sessions
        raise CommitThenRefuse(Unauthorized("invalid_refresh_token", "The refresh token is not valid; sign in again."))
    if row.expires_at <= now:
        raise Unauthorized("refresh_token_expired", "The session has expired; sign in again.")
    row.revoked_at = now
    institution_id = roles = None
    if row.role == "institution":
        # the new tokens name the account's institution as sign-in did; an account removed since signs in no more
        account = institution_account(session, row.subject)
        if account is None:  # kept: the token stays revoked, whatever account takes the name later
            raise CommitThenRefuse(Unauthorized("invalid_refresh_token",
                                                "The refresh token is not valid; sign in again."))
        institution_id = account.institution_id
    if row.role == "staff":
        # the roles the account holds now: a role given or taken away since the sign-in counts from here
        staff = staff_account(session, row.subject)
        if staff is None:  # kept: the token stays revoked, whatever account takes the name later
            raise CommitThenRefuse(Unauthorized("invalid_refresh_token",
                                                "The refresh token is not valid; sign in again."))
        roles = list(staff_roles.from_stored(staff.roles))
    candidate = session.get(Candidate, row.subject)
    display_name = candidate.full_name if candidate else row.subject
    return AuthenticatedPrincipal(subject=row.subject, role=row.role, display_name=display_name,
                                  institution_id=institution_id, staff_roles=roles,
                                  refresh_token=issue_refresh_token(session, protection, row.subject, row.role, now))


def logout(session: Session, protection: PersonalDataProtection, refresh_token: str,
           now: datetime | None = None) -> None:
    token_id, _, secret = refresh_token.partition(".")
    row = session.get(RefreshToken, token_id) if token_id else None
    if row is not None and secrets.compare_digest(row.token_digest, protection.token_digest(secret)):
        row.revoked_at = row.revoked_at or now or utcnow()


def revoke_all(session: Session, subject: str, now: datetime | None = None) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.subject == subject, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now or utcnow()))


# --- passwords ------------------------------------------------------------------------------------

def _set_password(session: Session, protection: PersonalDataProtection, candidate: Candidate, new_password: str,
                  now: datetime) -> None:
    resident_id_number = protection.decrypt(candidate.resident_id_encrypted)
    passwords.check_password(new_password, birth_date=domain.birth_date_of(resident_id_number),
                             personal_values=_personal_values(resident_id_number,
                                                              protection.decrypt(candidate.mobile_encrypted),
                                                              protection.decrypt(candidate.email_encrypted)))
    candidate.password_hash = passwords.hash_password(new_password)
    revoke_all(session, candidate.candidate_id, now)  # every session ends with the old password


def _with_current_password(session: Session, protection: PersonalDataProtection, candidate_id: str,
                           current_password: str, now: datetime) -> Candidate:
    """Changes to an account's secrets ask for the current password, under the guessing limits."""
    candidate = get_candidate(session, candidate_id, for_update=True)
    check_secret(session, protection, "current-password", candidate_id, None, candidate.password_hash,
                 current_password, now, "The current password is wrong.")
    return candidate


def change_password(session: Session, protection: PersonalDataProtection, candidate_id: str, current_password: str,
                    new_password: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    candidate = _with_current_password(session, protection, candidate_id, current_password, now)
    _set_password(session, protection, candidate, new_password, now)


def set_security_question(session: Session, protection: PersonalDataProtection, candidate_id: str,
                          current_password: str, question: str, answer: str,
                          now: datetime | None = None) -> None:
    now = now or utcnow()
    candidate = _with_current_password(session, protection, candidate_id, current_password, now)
    candidate.security_question = question
    candidate.security_answer_hash = passwords.hash_password(_answer_key(answer))


def reset_password_with_code(session: Session, protection: PersonalDataProtection, mobile: str, code: str,
                             new_password: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    mobile = domain.normalise_mobile(mobile)
    consume_code(session, protection, mobile, "password_reset", code, now)
    candidate = _candidate_by_mobile(session, protection, mobile)
    if candidate is None:  # nobody could have received the code; answer as for a wrong one (it stays used up)
        raise CommitThenRefuse(InvalidInput(*INVALID_CODE))
    _set_password(session, protection, candidate, new_password, now)


def security_question_for(session: Session, protection: PersonalDataProtection, login_name: str) -> str:
    """Unknown login names get a stable decoy question, so the answer reveals nothing."""
    candidate = _candidate_by_login(session, protection, login_name)
    if candidate is not None and candidate.security_question:
        return candidate.security_question
    kind, value = domain.classify_login(login_name)
    return DECOY_QUESTIONS[int(protection.index(value, "decoy")[:8], 16) % len(DECOY_QUESTIONS)]


def reset_password_with_answer(session: Session, protection: PersonalDataProtection, login_name: str, answer: str,
                               new_password: str, client_address: str | None = None,
                               now: datetime | None = None) -> None:
    now = now or utcnow()
    kind, value = domain.classify_login(login_name)
    candidate = _candidate_by_login(session, protection, login_name)
    # one guessing budget per account, however many of its login names are tried
    name = candidate.candidate_id if candidate else f"{kind}:{value}"
    check_secret(session, protection, "security-answer", name, client_address or "unknown",
                 candidate.security_answer_hash if candidate else None, _answer_key(answer), now,
                 "The login name or answer is wrong.")
    _set_password(session, protection, candidate, new_password, now)


# --- owner-only look-ups --------------------------------------------------------------------------

def lookup_ticket(session: Session, protection: PersonalDataProtection, mobile: str, code: str,
                  now: datetime | None = None) -> TicketLookupResult:
    """A forgotten ticket number, for the owner of the registered mobile only (never by ID number + name)."""
    mobile = domain.normalise_mobile(mobile)
    consume_code(session, protection, mobile, "ticket_lookup", code, now)
    candidate = _candidate_by_mobile(session, protection, mobile)
    if candidate is None:  # the code stays used up
        raise CommitThenRefuse(InvalidInput(*INVALID_CODE))
    return TicketLookupResult(full_name=candidate.full_name, status=candidate.status,
                              ticket_number=candidate.ticket_number)


def login_with_code(session: Session, protection: PersonalDataProtection, mobile: str, code: str,
                    now: datetime | None = None) -> AuthenticatedPrincipal:
    """Sign in with a code texted to the registered mobile (purpose ``sign_in``): single use, five minutes,
    the same wrong-try limits as every code. An unregistered number never received one."""
    now = now or utcnow()
    mobile = domain.normalise_mobile(mobile)
    consume_code(session, protection, mobile, "sign_in", code, now)
    candidate = _candidate_by_mobile(session, protection, mobile)
    if candidate is None:  # the code stays used up
        raise CommitThenRefuse(InvalidInput(*INVALID_CODE))
    return AuthenticatedPrincipal(subject=candidate.candidate_id, role="candidate", display_name=candidate.full_name,
                                  refresh_token=issue_refresh_token(session, protection, candidate.candidate_id,
                                                                     "candidate", now))


# --- staff ----------------------------------------------------------------------------------------

BOOTSTRAP_REASON = "the first staff account (BOOTSTRAP_STAFF_USERNAME) holds every role"


def ensure_bootstrap_staff(session: Session, username: str | None, password: str | None) -> None:
    """The first staff account comes from the environment so that a new deployment can sign in. It holds every
    role (it is the one that gives the others theirs); an administrator narrows it later."""
    if not username or not password or session.get(StaffAccount, username) is not None:
        return
    session.add(StaffAccount(username=username, display_name=username, roles=staff_roles.stored(STAFF_ROLES),
                             password_hash=passwords.hash_password(password), created_at=utcnow()))
    session.flush()
    _record_role_change(session, username, "bootstrap", (), STAFF_ROLES, BOOTSTRAP_REASON)


def authenticate_staff(session: Session, protection: PersonalDataProtection, username: str, password: str,
                       client_address: str | None = None,
                       now: datetime | None = None) -> AuthenticatedPrincipal:
    now = now or utcnow()
    account = session.get(StaffAccount, username)
    check_secret(session, protection, "staff-login", username, client_address or "unknown",
                 account.password_hash if account else None, password, now, "The username or password is wrong.")
    subject = staff_subject(account.username)
    return AuthenticatedPrincipal(subject=subject, role="staff", display_name=account.display_name,
                                  staff_roles=list(staff_roles.from_stored(account.roles)),
                                  refresh_token=issue_refresh_token(session, protection, subject, "staff", now))


def sign_in_staff(db, protection: PersonalDataProtection, bootstrap_username: str | None,
                  bootstrap_password: str | None, username: str, password: str,
                  client_address: str | None = None) -> AuthenticatedPrincipal:
    """A staff sign-in, the first one creating the bootstrap account. Takes the unit of work (``db``), not a
    session: the bootstrap account is created in a transaction of its own, so that a concurrent first sign-in that
    created it too (``409 concurrent_change``) does not refuse this one."""
    try:
        with db.transaction() as session:
            ensure_bootstrap_staff(session, bootstrap_username, bootstrap_password)
    except Conflict:
        pass  # a concurrent first sign-in created the account
    with db.transaction() as session:
        return authenticate_staff(session, protection, username, password, client_address)


def staff_view(account: StaffAccount) -> StaffAccountView:
    return StaffAccountView(username=account.username, display_name=account.display_name,
                            roles=list(staff_roles.from_stored(account.roles)))


def create_staff_account(session: Session, username: str, display_name: str, password: str,
                         roles: list[str] | tuple[str, ...] = (), created_by: str = "system") -> dict:
    """With the roles it is given (none: it signs in and may do nothing yet); the creation is in the record of
    role changes, with who created it."""
    passwords.check_password(password, personal_values=(username,))
    if session.get(StaffAccount, username) is not None:
        raise Conflict("username_taken", "This username is taken; choose another.")
    roles = staff_roles.staff_roles(roles)
    account = StaffAccount(username=username, display_name=display_name, roles=staff_roles.stored(roles),
                           password_hash=passwords.hash_password(password), created_at=utcnow())
    session.add(account)
    session.flush()
    _record_role_change(session, username, created_by, (), roles, "account created")
    return staff_view(account).model_dump(mode="json")


def staff_accounts(session: Session) -> StaffAccountList:
    return StaffAccountList(accounts=[staff_view(account) for account in
                                      session.scalars(select(StaffAccount).order_by(StaffAccount.username))])


def set_staff_roles(session: Session, username: str, roles: list[str] | tuple[str, ...], reason: str,
                    changed_by: str, now: datetime | None = None) -> StaffAccountView:
    """The account's whole set of roles from now on, recorded with who changed it and why. It counts from the
    account's next sign-in or refresh (a token already issued keeps its roles until it expires). Nobody changes
    their own roles, and the last account holding ``admin`` keeps it."""
    if changed_by == staff_subject(username):
        raise Forbidden("own_roles", "Nobody changes their own roles: another administrator does.")
    account = session.get(StaffAccount, username, with_for_update=True)
    if account is None:
        raise NotFound("staff_account_not_found", f"No staff account {username!r}.")
    before, after = staff_roles.from_stored(account.roles), staff_roles.staff_roles(roles)
    if before == after:
        return staff_view(account)
    if "admin" in before and "admin" not in after:
        other_admins = [other for other in session.scalars(
            select(StaffAccount).where(StaffAccount.username != username, StaffAccount.roles.contains("admin"))
            .with_for_update()) if "admin" in staff_roles.from_stored(other.roles)]
        if not other_admins:
            raise Conflict("last_admin", f"{username} is the last account holding admin; give admin to another "
                                         "account first. Nothing was changed.")
    account.roles = staff_roles.stored(after)
    _record_role_change(session, username, changed_by, before, after, reason, now)
    log.info("staff roles of %s changed by %s: %s -> %s", username, changed_by, ",".join(before) or "none",
             ",".join(after) or "none")
    return staff_view(account)


def staff_role_changes(session: Session, username: str) -> StaffRoleChangeList:
    if session.get(StaffAccount, username) is None:
        raise NotFound("staff_account_not_found", f"No staff account {username!r}.")
    rows = session.scalars(select(StaffRoleChange).where(StaffRoleChange.username == username)
                           .order_by(StaffRoleChange.change_id)).all()
    return StaffRoleChangeList(changes=[StaffRoleChangeView(
        username=row.username, changed_by=row.changed_by, roles_before=list(staff_roles.from_stored(row.roles_before)),
        roles_after=list(staff_roles.from_stored(row.roles_after)), reason=row.reason, changed_at=row.changed_at)
        for row in rows])


def _record_role_change(session: Session, username: str, changed_by: str, before, after, reason: str,
                        now: datetime | None = None) -> None:
    session.add(StaffRoleChange(username=username, changed_by=changed_by, roles_before=staff_roles.stored(before),
                                roles_after=staff_roles.stored(after), reason=reason, changed_at=now or utcnow()))


def transfer_region(session: Session, candidate_id: str, to_region: str, reason: str, staff: str,
                    now: datetime | None = None) -> CandidateView:
    """A transfer (转考) moves the candidate's exam record to another region; the ticket numbers stay."""
    now = now or utcnow()
    candidate = get_candidate(session, candidate_id, for_update=True)
    to_region = domain.check_exam_region(to_region)
    if candidate.exam_region == to_region:
        raise Conflict("same_region", "The candidate is already registered in this exam region.")
    from_region, candidate.exam_region = candidate.exam_region, to_region
    outbox.add(session, CandidateTransferredV1(
        transfer_id=str(uuid.uuid4()), candidate_id=candidate_id, from_region=from_region, to_region=to_region,
        reason=reason, transferred_at=now), subject=candidate_id)
    log.info("candidate %s transferred from region %s to %s by %s", candidate_id, from_region, to_region, staff)
    return candidate_view(candidate)
