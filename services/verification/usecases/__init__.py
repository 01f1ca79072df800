"""Verification service layer: the read model built from certificate events, its rebuild, and public checks."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, case, delete, func, insert, literal_column, null, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from credence_common.contracts.certificate_numbers import normalise_certificate_number
from credence_common.contracts.envelope import EventEnvelope, utcnow
from credence_common.contracts.errors import CredenceError, InvalidInput, NotFound, RateLimited
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1, CertificateSupersededV1
from credence_common.contracts.verification import PublicCheck, PublicCheckResult, VerifiedCertificate
from credence_common.persistence import appends
from credence_common.persistence.prepared import PreparedStatement, any_of_array, in_list
from credence_common.security.masking import mask_name, mask_resident_id_public
from services.verification import domain
from services.verification.models import CheckLogEntry, ReceivedEvent, ReportAccess, VerifiableCertificate

WITHDRAWN = {CertificateRevokedV1.event_type: "revoked", CertificateSupersededV1.event_type: "superseded"}
PAYLOADS = {model.event_type: model for model in (CertificateIssuedV1, CertificateRevokedV1, CertificateSupersededV1)}
NOT_FOUND_MESSAGE = "No certificate matches this holder name and number."


# --- the read model -------------------------------------------------------------------------------------

def apply_event(session: Session, event_type: str, event, batch: PreparedCertificates | None = None) -> None:
    """One certificate event applied to the read model; the same code serves live events and rebuilds
    (``batch``: the rows ``prepare_issued`` loaded for the batch of issued events this one came in)."""
    if event_type == CertificateIssuedV1.event_type:
        _apply_issued(session, event, batch)
    else:
        _apply_withdrawn(session, event.certificate_number, WITHDRAWN[event_type], event.sequence)


# the read-model rows of a batch of issued events, by certificate number (made by ``prepare_issued``)
PreparedCertificates = dict[str, VerifiableCertificate]


def prepare_issued(session: Session, events: list[CertificateIssuedV1]) -> PreparedCertificates:
    """Before a batch of issued events: their rows (most do not exist yet) in one query. ``_apply_issued`` then
    asks the database nothing per event, and the batch's inserts go at commit together; without this each
    event's look-up flushed the previous ones' inserts first, two round trips per certificate (two thirds of
    verification's CPU while issuing in bulk, py-spy, docs/performance.md "Late night, 2026-12-06")."""
    numbers = sorted({event.certificate_number for event in events})
    return {row.certificate_number: row for row in session.scalars(
        select(VerifiableCertificate).where(VerifiableCertificate.certificate_number.in_(numbers)))}


def _apply_issued(session: Session, event: CertificateIssuedV1, prepared: PreparedCertificates | None) -> None:
    row = prepared.get(event.certificate_number) if prepared is not None else \
        session.get(VerifiableCertificate, event.certificate_number)
    if row is None:
        row = VerifiableCertificate(certificate_number=event.certificate_number, sequence=0)
        session.add(row)
        if prepared is not None:  # a second event for the same number in this batch finds the row
            prepared[event.certificate_number] = row
    row.certificate_id = event.certificate_id
    row.holder_name = event.holder_name
    row.holder_name_key = domain.name_key(event.holder_name)
    # only the public form is kept: nothing verification answers needs more of the ID number
    row.resident_id_number_masked = mask_resident_id_public(event.resident_id_number_masked)
    row.program_code = event.program_code
    row.program_name = event.program_name
    row.issued_on = event.issued_on
    row.candidate_id = event.candidate_id
    row.level = event.level
    row.report_available_on = event.report_available_on
    if row.status not in ("revoked", "superseded"):  # a redelivered issue never brings a withdrawn one back
        row.status = "valid"
    row.sequence = max(row.sequence or 0, event.sequence or 0)
    row.updated_at = utcnow()


def _apply_withdrawn(session: Session, certificate_number: str, status: str, sequence: int) -> None:
    row = session.get(VerifiableCertificate, certificate_number)
    if row is None:
        # Events crossed (two workers, a redelivery): the issue is still on its way. Refuse, so the message
        # goes back to the queue and is applied after the issue event.
        raise RuntimeError(f"{status} {certificate_number} arrived before its issue; retried later")
    row.status = status
    row.sequence = max(row.sequence or 0, sequence or 0)
    row.updated_at = utcnow()


def record_event(session: Session, event, message: dict, batch: PreparedCertificates | None = None) -> None:
    """Apply a live event and keep it in the log a rebuild replays, in the same transaction (``batch``: see
    ``apply_event``)."""
    apply_event(session, message["type"], event, batch)
    appends.append(session, ReceivedEvent, event_id=message["id"], event_type=message["type"],
                   envelope_json=json.dumps(message, ensure_ascii=False), received_at=utcnow())


def rebuild(session: Session, on_progress=None) -> int:
    """Throw the read model away and replay every event from the start, in the order first applied."""
    session.execute(delete(VerifiableCertificate))
    replayed = 0
    for entry in session.scalars(select(ReceivedEvent).order_by(ReceivedEvent.position)).yield_per(1000):
        envelope = EventEnvelope.model_validate_json(entry.envelope_json)
        apply_event(session, entry.event_type, PAYLOADS[entry.event_type].model_validate(envelope.data))
        session.flush()
        replayed += 1
        if on_progress and replayed % 1000 == 0:
            on_progress(replayed)
    return replayed


def read_model_snapshot(session: Session) -> list[tuple]:
    return [tuple(row) for row in session.execute(select(
        VerifiableCertificate.certificate_number, VerifiableCertificate.certificate_id,
        VerifiableCertificate.holder_name, VerifiableCertificate.status, VerifiableCertificate.sequence,
        VerifiableCertificate.issued_on).order_by(VerifiableCertificate.certificate_number))]


# --- public checks --------------------------------------------------------------------------------------

CERTIFICATES = VerifiableCertificate.__table__
CHECK_LOG = CheckLogEntry.__table__
# what a public check reads of a certificate: its name key to compare, its status, what ``public_details`` shows
PUBLIC_COLUMNS = [CERTIFICATES.c[name] for name in (
    "certificate_number", "holder_name_key", "status", "holder_name", "resident_id_number_masked", "program_code",
    "program_name", "issued_on")]
# The statements are built once: building a statement and its cache key for every batch cost as much Python as
# running it (py-spy, docs/performance.md "Public check"). Each is built twice from one definition: with expanding
# IN lists for SQLite, and with arrays (``= ANY``) for PostgreSQL, which prepares them once per connection
# (credence_common/persistence/prepared.py: the look-up's time through the driver nearly halves).
def _certificates_by_number(one_of):
    return select(*PUBLIC_COLUMNS).where(one_of(CERTIFICATES.c.certificate_number, "numbers"))


# The look-up and the recent failures in one round trip (round trips are most of a lone check's database time):
# the certificates asked for (kind 'c'), then (kind 'f') the failed checks per number since a moment, grouped by
# the caller if it is one of ``callers`` (NULL for anybody else), so an attack from thousands of addresses still
# returns at most one row per number and caller of a batch. Each kind leaves the other's columns NULL; the first
# SELECT names and types the result's columns.
def _certificates_and_failures(one_of):
    failed_caller = case((one_of(CHECK_LOG.c.client, "callers"), CHECK_LOG.c.client), else_=null())
    return union_all(
        select(literal_column("'c'").label("kind"), *PUBLIC_COLUMNS, null().label("caller"), null().label("failures"))
        .where(one_of(CERTIFICATES.c.certificate_number, "numbers")),
        select(literal_column("'f'"), *[CHECK_LOG.c.certificate_number if column.name == "certificate_number"
                                        else null() for column in PUBLIC_COLUMNS], failed_caller, func.count())
        .where(one_of(CHECK_LOG.c.certificate_number, "numbers"),
               CHECK_LOG.c.checked_at > bindparam("since"),
               CHECK_LOG.c.outcome.in_(domain.FAILED_OUTCOMES))
        .group_by(CHECK_LOG.c.certificate_number, failed_caller))


CERTIFICATES_BY_NUMBER = PreparedStatement("verification_certificates_by_number", _certificates_by_number(in_list),
                                           postgresql=_certificates_by_number(any_of_array))
CERTIFICATES_AND_FAILURES = PreparedStatement("verification_certificates_and_failures",
                                              _certificates_and_failures(in_list),
                                              postgresql=_certificates_and_failures(any_of_array))
# who checks and why (what the verifier chose to say, or NULL) are columns of the same one insert per batch
LOG_CHECK = PreparedStatement("verification_log_check", insert(CHECK_LOG).inline().values(
    {name: bindparam(name) for name in ("checked_at", "certificate_number", "outcome", "client", "organisation",
                                        "purpose")}))


def public_check(connection: Connection, check: PublicCheck, client: str = "", per_number_per_minute: int = 20
                 ) -> PublicCheckResult:
    """Valid, superseded or revoked with masked details, or no match. A wrong name and an unknown number are
    one answer, reached by the same work; every check is logged. Wrong guesses at one number from anywhere
    are limited (``domain.answers_truthfully``) while the right name keeps its answer; enumeration from one
    address is throttled by the gateway."""
    [outcome] = public_checks(connection, [(check, client)], per_number_per_minute)
    if isinstance(outcome, CredenceError):
        raise outcome
    return outcome


def public_checks(connection: Connection, checks: list[tuple[PublicCheck, str]], per_number_per_minute: int = 20
                  ) -> list[PublicCheckResult | CredenceError]:
    """Each check answered as ``public_check`` answers it alone, in order; the work is shared: one query for
    the certificates and the recent failures (per number, and which of this batch's callers failed), one insert
    for the log.

    This is the busiest path of the platform, so it speaks SQLAlchemy Core: rows as tuples, no ORM entities
    or unit-of-work bookkeeping. The service runs it on an autocommit connection (``UnitOfWork.autocommit``):
    the reads need no transaction of their own, and the log insert is one statement that commits by itself,
    so the answer is given only once its log row is stored (issue #18, docs/performance.md "Public check")."""
    now = utcnow()
    numbers = [normalise_certificate_number(check.certificate_number) for check, _client in checks]
    wanted = {number for number in numbers if number}
    rows: dict = {}
    failures: dict[str, int] = {}
    failed_callers: set[tuple[str, str]] = set()
    if wanted and per_number_per_minute > 0:
        for row in CERTIFICATES_AND_FAILURES.execute(connection, {
                "numbers": list(wanted), "callers": list({client[:64] for _check, client in checks}),
                "since": now - timedelta(minutes=1)}):
            if row.kind == "c":
                rows[row.certificate_number] = row
                continue
            failures[row.certificate_number] = failures.get(row.certificate_number, 0) + row.failures
            if row.caller is not None:
                failed_callers.add((row.certificate_number, row.caller))
    elif wanted:
        rows = {row.certificate_number: row for row in CERTIFICATES_BY_NUMBER.execute(
            connection, {"numbers": list(wanted)})}
    log_rows: list[dict] = []
    outcomes: list[PublicCheckResult | CredenceError] = []

    def log(number: str, outcome: str, check: PublicCheck, client: str) -> None:
        log_rows.append({"checked_at": now, "certificate_number": number, "outcome": outcome,
                         "client": client[:64], "organisation": check.organisation, "purpose": check.purpose})
        if outcome in domain.FAILED_OUTCOMES:
            failures[number] = failures.get(number, 0) + 1
            failed_callers.add((number, client[:64]))

    for (check, client), number in zip(checks, numbers, strict=True):
        if number is None:
            log(check.certificate_number[:40], "invalid", check, client)
            outcomes.append(InvalidInput(
                "invalid_certificate_number", "A certificate number has 15 digits and its last digit is a check "
                "digit; please check for a typing mistake.",
                [{"field": "certificate_number", "message": "not a valid certificate number"}]))
            continue
        row = rows.get(number)
        # Compare against something even when there is no row, so both refusals cost the same.
        expected = row.holder_name_key if row is not None else domain.name_key("\u0000" + number)
        matches = hmac.compare_digest(expected.encode(), domain.name_key(check.holder_name).encode())
        if not domain.answers_truthfully(failures.get(number, 0), (number, client[:64]) in failed_callers,
                                         row is not None and matches, per_number_per_minute):
            log(number, "rate_limited", check, client)
            outcomes.append(RateLimited("rate_limited", "This certificate number was checked too often; wait a "
                                                        "minute."))
            continue
        if row is None or not matches:
            log(number, "no_match", check, client)
            outcomes.append(NotFound("certificate_not_found", NOT_FOUND_MESSAGE))
            continue
        log(number, row.status, check, client)
        outcomes.append(PublicCheckResult(result=row.status, certificate=public_details(row)))
    if log_rows:
        LOG_CHECK.execute(connection, log_rows)
    return outcomes


def public_details(row) -> VerifiedCertificate:
    """What anyone may see of a certificate (a ``VerifiableCertificate`` or a row of ``PUBLIC_COLUMNS``): the name
    masked, of the ID number only the last four."""
    return VerifiedCertificate(certificate_number=row.certificate_number, holder_name_masked=mask_name(row.holder_name),
                               resident_id_number_masked=mask_resident_id_public(row.resident_id_number_masked),
                               program_code=row.program_code, program_name=row.program_name, issued_on=row.issued_on)



# --- retention of the check log -------------------------------------------------------------------------

@dataclass(frozen=True)
class Retention:
    """How long the logs keep what: callers' full addresses (in the check log and in the log of who opened a
    report), then the check log's rows, and the rows of who opened a report (both shown to the holder)."""

    address_days: int = 30
    check_log_days: int = 365
    report_access_days: int = 365


@dataclass(frozen=True)
class RetentionDone:
    addresses_truncated: int
    checks_deleted: int
    accesses_deleted: int


TRUNCATE_BATCH = 500  # distinct addresses per statement round: keeps each round's transaction short


def apply_retention(session: Session, retention: Retention, now=None) -> RetentionDone:
    """Old rows go, and older-than-``address_days`` addresses shrink to their network (``domain.truncated_client``).
    Every statement says what the end state is (delete older than, set to the truncated form), so two
    replicas running it at once, or a run cut short and repeated, leave the same result."""
    now = now or utcnow()
    checks = session.execute(delete(CheckLogEntry).where(
        CheckLogEntry.checked_at < now - timedelta(days=retention.check_log_days)))
    accesses = session.execute(delete(ReportAccess).where(
        ReportAccess.accessed_at < now - timedelta(days=retention.report_access_days)))
    since = now - timedelta(days=retention.address_days)
    truncated = (_truncate_addresses(session, CheckLogEntry, CheckLogEntry.checked_at < since)
                 + _truncate_addresses(session, ReportAccess, ReportAccess.accessed_at < since))
    return RetentionDone(addresses_truncated=truncated, checks_deleted=checks.rowcount,
                         accesses_deleted=accesses.rowcount)


def _truncate_addresses(session: Session, model, old) -> int:
    truncated = 0
    while True:
        # A truncated address is a network ("a.b.c.0/24") or empty: only full addresses are still to do.
        clients = list(session.scalars(select(model.client).where(
            old, model.client != "", model.client.not_like("%/%")).distinct().limit(TRUNCATE_BATCH)))
        if not clients:
            return truncated
        for client in clients:
            truncated += session.execute(update(model).where(old, model.client == client)
                                         .values(client=domain.truncated_client(client))
                                         .execution_options(synchronize_session=False)).rowcount
