"""Verification reports (use cases): the holder asks for one, closes or extends it; anyone with the code reads
today's answer; the holder downloads it as PDF with its QR code (drawn by ``adapters/report_pdf.py``), shares it with
share codes and sees who looked (the CSV: ``adapters/access_csv.py``). The rules (signing, the CRV1 payload, a
report's state) are in ``domain/reports.py``; the published keys and their rotation in ``domain/report_keys.py``."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credence_common.calendar import business_day
from credence_common.contracts.certificate_numbers import normalise_certificate_number
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, NotFound
from credence_common.contracts.verification import (
    AccessList,
    AccessView,
    FullReport,
    OpenSharedReport,
    RecordCourse,
    RecordProgram,
    ReportAnswer,
    ReportCheck,
    ReportCheckResult,
    ReportKeySet,
    ReportList,
    ReportPublicKey,
    ReportView,
    ShareCodeCreated,
    ShareCodeList,
    ShareCodeView,
    VerifiedCertificate,
    VerifiedEducationRecord,
)
from credence_common.security import crypto, signing
from credence_common.security.masking import mask_ip_address, mask_name, mask_resident_id_public
from services.verification.adapters import access_csv
from services.verification.adapters.report_pdf import render as render_pdf
from services.verification.domain import report_keys, reports
from services.verification.models import (
    CheckLogEntry,
    RecordCorrection,
    ReportAccess,
    ShareCode,
    VerifiableCertificate,
    VerificationReport,
)
from services.verification.usecases import public_details


@dataclass(frozen=True)
class ReportSigner:
    private_key: object  # the current report key: it signs
    public_base_url: str  # where the QR code and verify_url lead: the gateway's public address
    since: datetime | None = None  # when the current key started signing (VERIFICATION_REPORT_KEY_SINCE)
    previous: tuple = ()  # reports.TrustedKey: earlier keys that verify until they retire (domain/report_keys.py)

    def verify_url(self, code: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/r/{code}"

    def keys_url(self) -> str:
        return self.public_base_url.rstrip("/") + report_keys.WELL_KNOWN_PATH

    def public_key(self) -> ReportPublicKey:
        public = self.private_key.public_key()
        return ReportPublicKey(key_id=signing.key_id(public), algorithm="Ed25519",
                               public_key_pem=signing.public_key_pem(self.private_key))

    def current_key(self) -> reports.TrustedKey:
        return report_keys.current_key(self.private_key, self.since)

    def trusted_keys(self, now: datetime) -> dict:
        return report_keys.trusted_keys(self.current_key(), self.previous, now)

    def key_set(self, now: datetime) -> ReportKeySet:
        return ReportKeySet.model_validate(report_keys.key_set(self.current_key(), self.previous, now))


def check_report(signer: ReportSigner, request: ReportCheck, now: datetime) -> ReportCheckResult:
    """The verdict on a signed report a caller sends, against the keys that verify today (domain/report_keys.py)."""
    return ReportCheckResult.model_validate(report_keys.check(signer.trusted_keys(now), request, now))


# --- report codes are credentials: only their digest is kept ---------------------------------------------

def report_id(code: str) -> str:
    """What is kept of a report code, and how the holder names a report without it: the first 160 bits of
    its SHA-256, in base32 like the code (32 characters, so it fits where the code was). A code has 160
    random bits, so a plain hash cannot be walked back and needs no key."""
    digest = hashlib.sha256(str(code).strip().upper().encode("utf-8")).digest()[:20]
    return base64.b32encode(digest).decode("ascii")


def stored_without_code(signed: dict, code: str) -> str:
    """The signed report as stored: its code and the code at the end of its verify URL left out."""
    document = signed["document"]
    return json.dumps({**signed, "document": {**document, "report_code": "",
                                              "verify_url": document["verify_url"].removesuffix(code)}},
                      ensure_ascii=False)


def with_code(stored: str, code: str) -> dict:
    """The signed report as signed, from what is stored and the code presented: the signature verifies again."""
    signed = json.loads(stored)
    document = signed["document"]
    return {**signed, "document": {**document, "report_code": code, "verify_url": document["verify_url"] + code}}


def _seal(share_code: str, code: str) -> str:
    """The report code encrypted under a key only the share code gives (HKDF of its 160 random bits)."""
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + AESGCM(_share_key(share_code)).encrypt(nonce, code.encode("ascii"), None)).decode()


def _unseal(share_code: str, sealed: str | None) -> str | None:
    if not sealed:
        return None
    raw = base64.b64decode(sealed)
    return AESGCM(_share_key(share_code)).decrypt(raw[:12], raw[12:], None).decode("ascii")


def _share_key(share_code: str) -> bytes:
    return crypto.derive_key(share_code.strip().upper(), b"credence-share-code-seal/v1")


def _view(report: VerificationReport, subject_status: str, code: str | None = None) -> ReportView:
    """``code`` only when the caller has it (the report was just made, or the holder presented it)."""
    verify_url = with_code(report.signed_json, code)["document"]["verify_url"] if code else None
    return ReportView(report_id=report.report_id, report_code=code, kind=report.kind,
                      certificate_number=report.certificate_number,
                      state=reports.report_state(utcnow(), report.expires_at, report.closed_at, subject_status),
                      requested_at=report.requested_at, expires_at=report.expires_at, closed_at=report.closed_at,
                      verify_url=verify_url, qr_url=reports.qr_url(verify_url) if verify_url else None)


def request_report(session: Session, signer: ReportSigner, candidate_id: str, certificate_number: str) -> ReportView:
    number = normalise_certificate_number(certificate_number)
    row = session.get(VerifiableCertificate, number) if number else None
    if row is None or row.candidate_id != candidate_id:
        raise NotFound("certificate_not_found", "You hold no certificate with this number.")
    if row.status != "valid":
        raise Conflict("certificate_not_valid", f"This certificate is {row.status}; no report can be made for it.")
    if row.report_available_on is not None and business_day(utcnow()) < row.report_available_on:
        raise Conflict("report_not_yet_available",
                       f"The verification report of this certificate opens on {row.report_available_on.isoformat()}"
                       " (working days after the fee was paid); public checks already answer.",
                       [{"field": "certificate_number", "message": f"opens on {row.report_available_on.isoformat()}"}])
    details = public_details(row).model_dump(mode="json")
    details["level"] = row.level
    report, code = _signed_report(session, signer, candidate_id, "certificate", {"certificate": details,
                                                                                  "status_when_requested": row.status})
    report.certificate_number = row.certificate_number
    return _view(report, row.status, code)


def achievements(record: dict) -> VerifiedEducationRecord | None:
    """What an education-record report states, from scoring's exam record: passed and exempted courses, passed
    composite programs and graduation. None when there is nothing to state."""
    programs = []
    for program in record.get("programs", []):
        courses = [RecordCourse(course_code=c["course_code"], course_name=c["course_name"], state=c["state"],
                                score=c.get("best_score") if c["state"] == "passed" else None,
                                sitting=c.get("sitting") if c["state"] == "passed" else None)
                   for c in program.get("courses", []) if c["state"] in ("passed", "exempted")]
        passed = program["kind"] == "composite" and program.get("outcome") == "passed"
        if courses or passed:
            programs.append(RecordProgram(program_code=program["program_code"], program_name=program["program_name"],
                                          kind=program["kind"], graduated=program.get("graduated"),
                                          outcome="passed" if passed else None, courses=courses))
    if not programs or not record.get("holder_name"):
        return None
    return VerifiedEducationRecord(holder_name_masked=mask_name(record["holder_name"]),
                                   resident_id_number_masked=mask_resident_id_public(
                                       record.get("resident_id_number_masked") or ""),
                                   programs=programs)


def request_record_report(session: Session, signer: ReportSigner, candidate_id: str, record: dict) -> ReportView:
    """``record``: the candidate's exam record as scoring answered it just before this transaction."""
    if record.get("candidate_id") != candidate_id:
        raise Conflict("record_mismatch", "The exam record does not belong to you.")
    stated = achievements(record)
    if stated is None:
        raise Conflict("nothing_to_report", "Your exam record has no passed course or program yet; a report can be "
                                            "made once a result is released.")
    report, code = _signed_report(session, signer, candidate_id, "education_record",
                                  {"education_record": stated.model_dump(mode="json")})
    report.holder_name = record["holder_name"]
    return _view(report, "valid", code)


def _signed_report(session: Session, signer: ReportSigner, candidate_id: str, kind: str, subject: dict
                   ) -> tuple[VerificationReport, str]:
    """The report and its code: the code is returned this once and kept only as its digest."""
    now = utcnow()
    code = reports.new_report_code()
    expires_at = now + reports.LIFETIME
    document = {"report_code": code, "kind": kind, "issuer": "Credence", **subject, "requested_at": now.isoformat(),
                "expires_at": expires_at.isoformat(), "verify_url": signer.verify_url(code)}
    signed = reports.sign_report(signer.private_key, document)
    report = VerificationReport(report_id=report_id(code), kind=kind, candidate_id=candidate_id,
                                signed_json=stored_without_code(signed, code), requested_at=now,
                                expires_at=expires_at)
    session.add(report)
    return report, code


def _own_report(session: Session, candidate_id: str, handle: str, lock: bool = False
                ) -> tuple[VerificationReport, str | None]:
    """The holder names a report by its id (in their list) or by its code (if they kept it); the code comes
    back too when that is what they gave. Someone else's report is not found either way."""
    handle = str(handle).strip().upper()[:32]
    report, code = session.get(VerificationReport, handle, with_for_update=lock), None
    if report is None:
        report, code = session.get(VerificationReport, report_id(handle), with_for_update=lock), handle
    if report is None or report.candidate_id != candidate_id:
        raise NotFound("report_not_found", "You have no report with this id or code.")
    return report, code


def _status_of(session: Session, report: VerificationReport) -> str:
    """Today's status of what the report is about: the certificate's, or whether the record was corrected."""
    if report.kind == "education_record":
        correction = session.get(RecordCorrection, report.candidate_id)
        return "corrected" if correction is not None and correction.corrected_at > report.requested_at else "valid"
    row = session.get(VerifiableCertificate, report.certificate_number)
    return row.status if row else "revoked"


def my_reports(session: Session, signer: ReportSigner, candidate_id: str) -> ReportList:
    rows = session.scalars(select(VerificationReport).where(VerificationReport.candidate_id == candidate_id)
                           .order_by(VerificationReport.requested_at.desc()))
    return ReportList(reports=[_view(r, _status_of(session, r)) for r in rows])


def close_report(session: Session, signer: ReportSigner, candidate_id: str, handle: str) -> ReportView:
    report, code = _own_report(session, candidate_id, handle, lock=True)
    if report.closed_at is None:
        report.closed_at = utcnow()
    # Closing withdraws consent: the share codes not yet used die with the report (the holder sees them revoked).
    session.execute(update(ShareCode).where(ShareCode.report_id == report.report_id, ShareCode.revoked_at.is_(None),
                                            ShareCode.used_at.is_(None))
                    .values(revoked_at=report.closed_at).execution_options(synchronize_session=False))
    return _view(report, _status_of(session, report), code)


def extend_report(session: Session, signer: ReportSigner, candidate_id: str, handle: str) -> ReportView:
    """Another 30 days from today. The stored document keeps its expiry; what is answered and downloaded from now
    on is signed with the new one (``public_signed_report``), so a PDF taken after the extension verifies offline
    until the new date."""
    report, code = _own_report(session, candidate_id, handle, lock=True)
    if report.closed_at is not None:
        raise Conflict("report_closed", "A closed report cannot be extended; ask for a new one.")
    report.expires_at = max(report.expires_at, utcnow()) + reports.LIFETIME
    return _view(report, _status_of(session, report), code)


WITHDRAWN_STATES = ("closed", "expired")  # the holder's consent ended: the report answers its state and nothing more


OPENED_BY_CODE = ("report_code", "report_qr")  # how a report is opened without a share code


def report_answer(session: Session, signer: ReportSigner, code: str, client: str = "",
                  channel: str = "report_code") -> ReportAnswer:
    """Anyone holding the code: today's authoritative answer. An unknown code says nothing more than that; a
    closed or expired report says only that (no name, ID number, subject or signed document). Every opening
    of a report is recorded for its holder: when, ``channel`` (the code typed, or the QR code's URL), the
    caller's address (``client``) and the state answered."""
    if not isinstance(code, str) or not code.isalnum() or len(code) != 32:
        raise InvalidInput("invalid_report_code", "A report code has 32 letters and digits.")
    report = session.get(VerificationReport, report_id(code))  # by the code's digest: never by the id itself
    if report is None:
        raise NotFound("report_not_found", "No report has this code.")
    answer = _answer(session, signer, report, code.upper())
    session.add(ReportAccess(candidate_id=report.candidate_id, report_id=report.report_id,
                             certificate_number=report.certificate_number,
                             channel=channel if channel in OPENED_BY_CODE else "report_code",
                             client=str(client or "")[:64], outcome=answer.state, accessed_at=utcnow()))
    return answer


def _answer(session: Session, signer: ReportSigner, report: VerificationReport, code: str | None) -> ReportAnswer:
    """``code`` None: a share code made before codes were sealed; the answer then has no signed document."""
    state = reports.report_state(utcnow(), report.expires_at, report.closed_at, _status_of(session, report))
    if state in WITHDRAWN_STATES:
        return ReportAnswer(report_code=code or report.report_id, kind=report.kind, state=state,
                            message=reports.STATE_MESSAGES[state], requested_at=report.requested_at,
                            expires_at=report.expires_at, closed_at=report.closed_at)
    signed = public_signed_report(signer, with_code(report.signed_json, code), report.expires_at) if code else None
    document = signed["document"] if signed else _publicly_masked(json.loads(report.signed_json)["document"])
    if report.kind == "education_record":
        subject = {"education_record": VerifiedEducationRecord.model_validate(document["education_record"])}
        message = reports.RECORD_VALID_MESSAGE if state == "valid" else reports.STATE_MESSAGES[state]
    else:
        subject = {"certificate": VerifiedCertificate.model_validate(
            {k: v for k, v in document["certificate"].items() if k != "level"})}
        message = reports.STATE_MESSAGES[state]
    return ReportAnswer(report_code=code or report.report_id, kind=report.kind, state=state, message=message,
                        **subject, requested_at=report.requested_at, expires_at=report.expires_at,
                        signed_report=signed)


def public_signed_report(signer: ReportSigner, signed: dict, expires_at=None) -> dict:
    """The signed report as anyone may read it: of the ID number only the last four. Reports signed before
    that rule kept the region code; their document is masked again and signed again with today's key (the
    holder's earlier download still verifies, the online answer no longer carries the longer form). An extended
    report (``expires_at`` later than the document says) is signed again with its new expiry, so a copy taken
    after the extension verifies offline until then; a copy taken before keeps its own, earlier expiry."""
    document = _publicly_masked(signed["document"])
    if expires_at is not None and document.get("expires_at") != expires_at.isoformat():
        document = {**document, "expires_at": expires_at.isoformat()}
    # signed with today's key: after a rotation (or a leaked key dropped) what is downloaded verifies against the
    # current key set
    current = signing.key_id(signer.private_key.public_key())
    if document == signed["document"] and signed.get("key_id") == current:
        return signed
    return reports.sign_report(signer.private_key, document)


def _publicly_masked(document: dict) -> dict:
    """The document with its subject's ID number in the public form (the same document if it already was)."""
    subject_key = "education_record" if document.get("kind") == "education_record" else "certificate"
    subject = document.get(subject_key) or {}
    shown = subject.get("resident_id_number_masked")
    if shown is None or shown == mask_resident_id_public(shown):
        return document
    return {**document, subject_key: {**subject, "resident_id_number_masked": mask_resident_id_public(shown)}}


def report_pdf(session: Session, signer: ReportSigner, candidate_id: str, handle: str) -> bytes:
    """The PDF the holder hands to third parties: only while the report is open, masked as public, and only
    with the report code (its QR code carries it, and only its digest is kept). The whole signed report goes
    into it (adapters/report_pdf.py): a second QR code, its metadata and an attached file, for offline checks."""
    report, code = _own_report(session, candidate_id, handle)
    state = reports.report_state(utcnow(), report.expires_at, report.closed_at, _status_of(session, report))
    if state in WITHDRAWN_STATES:
        raise Conflict(f"report_{state}", reports.STATE_MESSAGES[state] + " Ask for a new report to download one.")
    if code is None:
        raise Conflict("report_code_needed", "The PDF's QR code carries the report code, which is kept only as a "
                                             "digest: download it with the code you were given when you asked "
                                             "for the report, or ask for a new report.")
    return render_pdf(public_signed_report(signer, with_code(report.signed_json, code), report.expires_at),
                      signer.keys_url())


# --- consent: share codes and who looked ---------------------------------------------------------------

def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode("utf-8")).hexdigest()


def create_share_code(session: Session, candidate_id: str, handle: str, valid_hours: int) -> ShareCodeCreated:
    """Made with the report code, the share code carries it sealed, and the verifier also gets the signed
    document; made with the report id, the verifier gets the answer without it."""
    report, report_code = _own_report(session, candidate_id, handle)
    now = utcnow()
    if report.closed_at is not None or now >= report.expires_at:
        raise Conflict("report_not_open", "This report is closed or expired; share a report that is open.")
    code = reports.new_report_code()
    share = ShareCode(share_id=str(uuid.uuid4()), code_digest=_digest(code), report_id=report.report_id,
                      sealed_report_code=_seal(code, report_code) if report_code else None,
                      candidate_id=candidate_id, created_at=now,
                      expires_at=min(now + timedelta(hours=valid_hours), report.expires_at))
    session.add(share)
    return ShareCodeCreated(share_id=share.share_id, share_code=code, report_code=report.report_id,
                            expires_at=share.expires_at)


def _share_state(share: ShareCode, now) -> str:
    if share.revoked_at is not None:
        return "revoked"
    if share.used_at is not None:
        return "used"
    if now >= share.expires_at:
        return "expired"
    return "open"


def share_codes(session: Session, candidate_id: str) -> ShareCodeList:
    now = utcnow()
    rows = session.scalars(select(ShareCode).where(ShareCode.candidate_id == candidate_id)
                           .order_by(ShareCode.created_at.desc()))
    return ShareCodeList(share_codes=[ShareCodeView(share_id=s.share_id, report_code=s.report_id,
                                                    created_at=s.created_at, expires_at=s.expires_at,
                                                    revoked_at=s.revoked_at, used_at=s.used_at,
                                                    state=_share_state(s, now)) for s in rows])


def revoke_share_code(session: Session, candidate_id: str, share_id: str) -> None:
    share = session.get(ShareCode, str(share_id)[:36], with_for_update=True)
    if share is None or share.candidate_id != candidate_id:
        raise NotFound("share_code_not_found", "You have no share code with this id.")
    if share.revoked_at is None:
        share.revoked_at = utcnow()


def open_shared_report(session: Session, signer: ReportSigner, request: OpenSharedReport, client: str = ""
                       ) -> FullReport:
    """Once: the first verifier to present the code opens the full report, and the holder sees who and why."""
    share = session.scalars(select(ShareCode).where(ShareCode.code_digest == _digest(request.share_code))
                            .with_for_update()).first()
    if share is None:
        raise NotFound("share_code_not_found", "No report is shared under this code.")
    now = utcnow()
    state = _share_state(share, now)
    report = session.get(VerificationReport, share.report_id)
    if state == "open" and (report is None or report.closed_at is not None):
        state = "revoked"  # closed before closing revoked its codes: consent ended with the report all the same
    elif state == "open" and now >= report.expires_at:
        state = "expired"
    if state != "open":
        raise Conflict(f"share_code_{state}", {"used": "This share code was already used; ask the holder for a "
                                                       "new one.",
                                               "expired": "This share code has expired; ask the holder for a new "
                                                          "one.",
                                               "revoked": "The holder withdrew this share code."}[state])
    opened = session.execute(update(ShareCode).where(ShareCode.share_id == share.share_id,
                                                     ShareCode.used_at.is_(None))
                             .values(used_at=now).execution_options(synchronize_session=False))
    if opened.rowcount != 1:  # another verifier presented it at the same moment and won
        raise Conflict("share_code_used", "This share code was already used; ask the holder for a new one.")
    answer = _answer(session, signer, report, _unseal(request.share_code, share.sealed_report_code))
    session.add(ReportAccess(candidate_id=share.candidate_id, report_id=share.report_id,
                             certificate_number=report.certificate_number, channel="share_code",
                             client=str(client or "")[:64], outcome=answer.state, share_id=share.share_id,
                             verifier_name=request.verifier_name, organisation=request.organisation,
                             purpose=request.purpose, accessed_at=now))
    if report.kind == "education_record":
        return FullReport(holder_name=report.holder_name or answer.education_record.holder_name_masked, report=answer)
    row = session.get(VerifiableCertificate, report.certificate_number)
    return FullReport(holder_name=row.holder_name if row else answer.certificate.holder_name_masked,
                      level=row.level if row else None, report=answer)


ACCESSES_SHOWN = 1000  # the newest looks shown; older ones: ``AccessList.truncated`` (retention bounds the rest)


def accesses(session: Session, candidate_id: str, limit: int = ACCESSES_SHOWN) -> AccessList:
    """Everyone who looked, newest first: every opening of the holder's reports (by code, QR code or share
    code; with a share code, who the verifier said they are and why) and every public check of their
    certificate numbers (with who checks and why, when the verifier said). Each with the time, the channel and
    the caller's address masked to its network (``mask_ip_address``): the holder never sees a full address."""
    opened = session.scalars(select(ReportAccess).where(ReportAccess.candidate_id == candidate_id)
                             .order_by(ReportAccess.accessed_at.desc(), ReportAccess.access_id.desc())
                             .limit(limit + 1)).all()
    views = [AccessView(kind="full_report" if a.channel == "share_code" else "report", channel=a.channel,
                        at=a.accessed_at, certificate_number=a.certificate_number, report_code=a.report_id,
                        address_masked=mask_ip_address(a.client), verifier_name=a.verifier_name,
                        organisation=a.organisation, purpose=a.purpose, outcome=a.outcome)
             for a in opened[:limit]]
    numbers = list(session.scalars(select(VerifiableCertificate.certificate_number).where(
        VerifiableCertificate.candidate_id == candidate_id)))
    checks = session.scalars(select(CheckLogEntry).where(CheckLogEntry.certificate_number.in_(numbers))
                             .order_by(CheckLogEntry.checked_at.desc(), CheckLogEntry.check_id.desc())
                             .limit(limit + 1)).all() if numbers else []
    views += [AccessView(kind="public_check", channel="public_check", at=c.checked_at,
                         certificate_number=c.certificate_number, address_masked=mask_ip_address(c.client),
                         organisation=c.organisation, purpose=c.purpose, outcome=c.outcome)
              for c in checks[:limit]]
    views.sort(key=lambda a: a.at, reverse=True)
    return AccessList(accesses=views[:limit], truncated=len(opened) > limit or len(checks) > limit
                      or len(views) > limit)


def accesses_csv(session: Session, candidate_id: str) -> str:
    """The holder's access log to download: the same entries as ``accesses``, as CSV (UTF-8 with a byte order
    mark, so that a spreadsheet reads the Chinese right), one row per look, newest first."""
    return access_csv.render(accesses(session, candidate_id))


def record_corrected(session: Session, event) -> None:
    """A released result was corrected: record reports of this candidate made before now are out of date."""
    correction = session.get(RecordCorrection, event.candidate_id, with_for_update=True)
    if correction is None:
        session.add(RecordCorrection(candidate_id=event.candidate_id, corrected_at=event.corrected_at))
    elif event.corrected_at > correction.corrected_at:
        correction.corrected_at = event.corrected_at
