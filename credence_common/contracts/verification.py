"""RPC and HTTP schemas of the verification service."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

VERIFIER_ORGANISATION_MAX = 100
VERIFIER_PURPOSE_MAX = 200


def stated_text(value: Any) -> Any:
    """What a verifier typed about themselves (name, organisation, purpose), as the holder will read it: every
    run of white space one space, control and format characters gone (C0/C1 controls, bidi overrides,
    zero-width characters: they could make one text look like another), trimmed; nothing left is nothing said.
    The length limits apply to what is left. Anything but text is left for the model to refuse."""
    if not isinstance(value, str):
        return value
    kept = "".join(" " if character.isspace() else character for character in value
                   if character.isspace() or unicodedata.category(character) not in ("Cc", "Cf"))
    return " ".join(kept.split())


def _optional_stated_text(value: Any) -> Any:
    value = stated_text(value)
    return value or None


StatedText = Annotated[str, BeforeValidator(stated_text)]
OptionalStatedText = Annotated[str | None, BeforeValidator(_optional_stated_text)]


class PublicCheck(BaseModel):
    """A third-party check (非本人查询): holder name and certificate number, both sent in the body; optionally
    who is checking and why (the holder sees it in their access log, with the time and the masked address)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    holder_name: str = Field(min_length=1, max_length=40)
    certificate_number: str = Field(min_length=1, max_length=40)
    organisation: OptionalStatedText = Field(
        default=None, max_length=VERIFIER_ORGANISATION_MAX,
        description="Optional: the organisation checking (shown to the holder; at most 100 characters)")
    purpose: OptionalStatedText = Field(
        default=None, max_length=VERIFIER_PURPOSE_MAX,
        description="Optional: why it checks (shown to the holder; at most 200 characters)")


class VerifiedCertificate(BaseModel):
    certificate_number: str
    holder_name_masked: str
    resident_id_number_masked: str
    program_code: str
    program_name: str
    issued_on: date


class PublicCheckResult(BaseModel):
    """``superseded``: a reissue or correction replaced it (the holder has a newer certificate);
    ``revoked``: the authority withdrew it. No match at all is ``404 certificate_not_found``."""

    result: Literal["valid", "superseded", "revoked"]
    certificate: VerifiedCertificate


class RequestReport(BaseModel):
    """A report on one certificate, or on the holder's education record (考籍: passed and exempted courses,
    programs completed), as scoring holds it when the report is made."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["certificate", "education_record"] = "certificate"
    certificate_number: str | None = Field(default=None, min_length=1, max_length=40,
                                           description="Required for a certificate report; absent for a record")

    @model_validator(mode="after")
    def _number_matches_kind(self) -> Self:
        if self.kind == "certificate" and not self.certificate_number:
            raise ValueError("certificate_number is required for a certificate report")
        if self.kind == "education_record" and self.certificate_number:
            raise ValueError("an education-record report names no certificate")
        return self


ReportState = Literal["valid", "expired", "closed", "revoked", "superseded", "corrected"]
ReportKind = Literal["certificate", "education_record"]


class ReportView(BaseModel):
    """One of the holder's reports. The report code opens it for anyone, so it is a credential: it is shown
    once, when the report is made (and when the holder presents it), and only its digest is kept; the
    holder's list names each report by ``report_id``, which the holder's routes accept as well as the code."""

    report_id: str = Field(description="The report's id in your list (the digest of its code); it opens nothing")
    report_code: str | None = Field(default=None, description="Shown when the report is made: keep it")
    kind: ReportKind = "certificate"
    certificate_number: str | None = None
    state: ReportState
    requested_at: datetime
    expires_at: datetime
    closed_at: datetime | None = None
    verify_url: str | None = Field(default=None, description="The report's page, as printed; with the code only")
    qr_url: str | None = Field(default=None, description="What the QR code opens: the page, marked ?via=qr so "
                                                         "that your access log tells a scan from a typed code; "
                                                         "with the code only")


class ReportList(BaseModel):
    reports: list[ReportView]


class RecordCourse(BaseModel):
    course_code: str
    course_name: str
    state: Literal["passed", "exempted"]
    score: int | None = None
    sitting: str | None = None


class RecordProgram(BaseModel):
    program_code: str
    program_name: str
    kind: Literal["composite", "course_based"]
    graduated: bool | None = Field(default=None, description="Course-based: every required course passed (毕业)")
    outcome: Literal["passed"] | None = Field(default=None, description="Composite: passed")
    courses: list[RecordCourse] = []


class VerifiedEducationRecord(BaseModel):
    """What an education-record report states: achievements only (failed attempts and violations stay in the
    holder's own record), the name and ID number masked."""

    holder_name_masked: str
    resident_id_number_masked: str
    programs: list[RecordProgram]


class ReportAnswer(BaseModel):
    """The online page's answer for a report code: authoritative, and always today's status. A report the
    holder closed, or that expired, answers its state only: no subject, no signed document."""

    report_code: str
    kind: ReportKind = "certificate"
    state: ReportState
    message: str
    certificate: VerifiedCertificate | None = Field(default=None, description="A certificate report (open only)")
    education_record: VerifiedEducationRecord | None = Field(default=None, description="An education-record report "
                                                                                       "(open only)")
    requested_at: datetime
    expires_at: datetime
    closed_at: datetime | None = Field(default=None, description="When the holder closed it")
    signed_report: dict[str, Any] | None = Field(default=None, description="The document as signed, its Ed25519 "
                                                           "signature and key id: verifiable offline with the "
                                                           "public key (open reports only)")


class ReportPublicKey(BaseModel):
    key_id: str
    algorithm: Literal["Ed25519"]
    public_key_pem: str


class ReportKey(BaseModel):
    """One report key as a JSON Web Key (RFC 7517, RFC 8037 for Ed25519) with when it signs and verifies."""

    kid: str = Field(description="The key id reports name (the first 16 hex digits of the SHA-256 of the key's "
                                 "DER SubjectPublicKeyInfo)")
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    x: str = Field(description="The raw public key, base64url without padding")
    status: Literal["current", "previous"] = Field(description="current signs new reports; previous ones only "
                                                               "verify, until retire_after")
    not_before: datetime | None = Field(description="When the key started signing, if the authority stated it")
    retire_after: datetime | None = Field(description="After this a report it signed is not to be trusted (null: "
                                                      "the current key, not yet scheduled to retire)")
    public_key_pem: str


class ReportKeySet(BaseModel):
    """What /.well-known/credence-report-keys.json publishes: every key that verifies reports today."""

    issuer: str
    algorithm: Literal["Ed25519"]
    payload_format: Literal["CRV1"] = Field(description="The compact payload of the PDF's second QR code")
    keys: list[ReportKey]


class ReportCheck(BaseModel):
    """A signed report to judge against the published keys: its compact payload (the PDF's second QR code) or
    its JSON (the online answer's signed_report), one of the two."""

    model_config = ConfigDict(extra="forbid")

    payload: str | None = Field(default=None, min_length=1, max_length=8000,
                                description="CRV1:... as read from the report's second QR code")
    signed_report: dict[str, Any] | None = Field(default=None, description="The signed report as JSON")

    @model_validator(mode="after")
    def one_of_the_two(self) -> Self:
        if (self.payload is None) == (self.signed_report is None):
            raise ValueError("send the payload or the signed_report, one of the two")
        return self


class ReportCheckResult(BaseModel):
    """What the signature says on its own (the online answer at verify_url says what became of the subject)."""

    verdict: Literal["valid", "tampered", "expired", "unknown_key"]
    message: str
    key_id: str | None = None
    document: dict[str, Any] | None = Field(default=None, description="What was signed, when the signature is good")


class CreateShareCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_hours: int = Field(default=72, ge=1, le=720, strict=True,
                             description="How long the code opens the report (it opens it once)")


class ShareCodeCreated(BaseModel):
    share_id: str
    share_code: str = Field(description="Shown once: hand it to the employer; only its digest is kept")
    report_code: str = Field(description="The report's id (report_id), not its code")
    expires_at: datetime


class ShareCodeView(BaseModel):
    share_id: str
    report_code: str = Field(description="The report's id (report_id), not its code")
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    used_at: datetime | None = None
    state: Literal["open", "used", "expired", "revoked"]


class ShareCodeList(BaseModel):
    share_codes: list[ShareCodeView]


class OpenSharedReport(BaseModel):
    """A verifier opens the full report with the holder's share code, and says who they are and why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    share_code: str = Field(min_length=1, max_length=64)
    verifier_name: StatedText = Field(min_length=1, max_length=60)
    organisation: StatedText = Field(min_length=1, max_length=VERIFIER_ORGANISATION_MAX)
    purpose: StatedText = Field(min_length=1, max_length=VERIFIER_PURPOSE_MAX)


class FullReport(BaseModel):
    """What a share code opens: the report's answer with the holder's name in full (the ID number stays masked)."""

    holder_name: str
    level: str | None = None
    report: ReportAnswer


AccessChannel = Literal["public_check", "report_code", "report_qr", "share_code"]


class AccessView(BaseModel):
    """One look at the holder's certificate or report: when, by which channel, from where (the masked address
    only), and what the verifier said about themselves, if anything (free text they typed: untrusted)."""

    kind: Literal["full_report", "report", "public_check"] = Field(
        description="full_report: opened with a share code; report: opened by its code or QR code; "
                    "public_check: a check by holder name and certificate number")
    channel: AccessChannel = Field(description="public_check (API or /verify form), report_code (the code typed "
                                               "or its URL), report_qr (the QR code's URL), share_code")
    at: datetime
    certificate_number: str | None = Field(default=None, description="Absent for an education-record report")
    report_code: str | None = Field(default=None, description="The report's id (report_id), not its code")
    address_masked: str = Field(default="", description="The caller's network (IPv4 /24, IPv6 /48), never the "
                                                        "full address; empty when unknown")
    verifier_name: str | None = None
    organisation: str | None = None
    purpose: str | None = None
    outcome: str | None = Field(default=None, description="A check's answer (valid, no_match, rate_limited, ...) "
                                                          "or the report's state when opened")


class AccessList(BaseModel):
    accesses: list[AccessView]
    truncated: bool = Field(default=False, description="Older entries exist beyond the newest shown")
