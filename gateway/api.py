"""The HTTP API as data: one ``Route`` per endpoint, its roles, its request and response models and a
handler that only forwards to a service. The nameko binding (``service.py``) and the OpenAPI document
(``openapi.py``) are both generated from this table, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from credence_common.contracts.certificates import (
    ApplyForReplacement,
    BatchList,
    BatchView,
    CancelReplacement,
    CertificateHistoryView,
    CertificateList,
    CertificateView,
    ConfirmCertificate,
    CorrectionRequestList,
    CorrectionRequestView,
    DecideCorrection,
    ReplacementApplicationList,
    ReplacementApplicationView,
    RequestCorrection,
    RevokeCertificate,
    ShipCertificate,
)
from credence_common.contracts.identity import (
    CandidateList,
    CandidateView,
    ChangePassword,
    ChoosePrimaryTicket,
    CodeLogin,
    ConfirmIdentityOnline,
    ConfirmIdentityOnSite,
    CreateInstitution,
    CreateStaffAccount,
    DecidePriorEducation,
    DevSmsMessages,
    DevSmsQuery,
    Done,
    ImportLegacyTickets,
    ImportOutcome,
    InstitutionCredentials,
    InstitutionView,
    Login,
    MergeTickets,
    MobileCodeSent,
    MyTickets,
    PriorEducationView,
    RefreshTokenRequest,
    RegisterCandidate,
    RegisterStudent,
    RequestMobileCode,
    ResetPasswordWithAnswer,
    ResetPasswordWithCode,
    SecurityQuestionRequest,
    SecurityQuestionView,
    SetSecurityQuestion,
    StaffAccountView,
    StaffCredentials,
    SubmitPriorEducation,
    SubmitPriorEducationProof,
    TicketLookup,
    TicketLookupResult,
    TransferRegion,
)
from credence_common.contracts.payments import (
    CreatePaymentOrder,
    DueList,
    FeeSchedule,
    FeeView,
    IncidentList,
    NotificationAcknowledgement,
    PaymentOrderList,
    PaymentOrderView,
    ReconciliationReport,
    RefundList,
    RefundView,
    RequestRefund,
    SandboxNotification,
    SandboxPayment,
    SandboxPaymentOutcome,
    SetFee,
)
from credence_common.contracts.scoring import (
    CandidateRecord,
    CloseScoreReview,
    CorrectResult,
    DecideHeldResult,
    EvaluateResult,
    EvaluationQueue,
    GrantExemption,
    ImportReportView,
    ProgramList,
    PublishResults,
    PublishResultsOutcome,
    RecordResults,
    RecordResultsOutcome,
    ReleaseList,
    ReleaseView,
    RequestScoreReview,
    ResultList,
    ScoreReviewList,
    ScoreReviewView,
)
from credence_common.contracts.verification import (
    AccessList,
    CreateShareCode,
    FullReport,
    OpenSharedReport,
    PublicCheck,
    PublicCheckResult,
    ReportAnswer,
    ReportList,
    ReportPublicKey,
    ReportView,
    RequestReport,
    ShareCodeCreated,
    ShareCodeList,
)
from gateway.auth import Principal


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None


@dataclass
class Call:
    """Everything a handler may use: who asks, what they sent, and the services to ask."""

    principal: Principal
    body: Any
    params: dict
    rpc: Any  # gateway.service.ServiceCalls
    tokens: Any  # gateway.auth.TokenService
    raw_body: bytes = b""
    headers: dict = field(default_factory=dict)
    client_address: str = ""
    query: dict = field(default_factory=dict)
    actor_signer: Any = None  # credence_common.actor_tokens.ActorSigner

    @cached_property
    def actor(self) -> str:
        """Who asks, passed to services that check access themselves: signed, because a service believes
        only what the gateway vouches for (credence_common/actor_tokens.py); once per request, however many
        calls the handler makes."""
        return self.actor_signer.sign(self.principal.subject, self.principal.role)


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str  # werkzeug syntax, e.g. /api/v1/things/<thing_id>
    summary: str
    roles: tuple[str, ...]
    handler: Callable[[Call], Any]
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    success_status: int = 200
    raw_body: bool = False  # the handler needs the exact bytes (signed callbacks)
    documented_body: type[BaseModel] | None = None  # schema of a raw body, for the OpenAPI document only
    max_body_bytes: int = 2 * 1024 * 1024
    header_params: tuple[tuple[str, bool, str], ...] = ()  # (name, required, description), for OpenAPI
    content_type: str = "application/json"  # anything else: the handler returns the body as text
    rate_limited: bool = False
    tag: str = "api"
    # unsafe routes honour Idempotency-Key; off where the answer must not be replayed (batched public checks) and
    # wherever it is or holds a credential (NOT_REPLAYED): a stored token would outlive a logout, a password
    # change or the code it was bought with, so a retry must be a fresh attempt (tests/security/test_credentials.py)
    replayable: bool = True
    # exists only with CREDENCE_ENV=development (the sandbox payer, the dev SMS inbox): elsewhere the gateway does
    # not mount it, so it is an unknown path (404 route_not_found) and absent from /openapi.json
    development_only: bool = False


def _dump(model: BaseModel | None) -> dict | None:
    return model.model_dump(mode="json") if model is not None else None


# --- handlers: forward, never decide -------------------------------------------------------------

def request_mobile_code(call: Call):
    return call.rpc.call("identity", "request_mobile_code", _dump(call.body), call.client_address)


def register_candidate(call: Call):
    return call.rpc.call("identity", "register_candidate", _dump(call.body))


def _tokens(call: Call, principal: dict) -> dict:
    tokens = call.tokens.issue(principal["subject"], principal["role"])
    tokens["refresh_token"] = principal.get("refresh_token")
    return tokens


def login(call: Call):
    return _tokens(call, call.rpc.call("identity", "login", _dump(call.body), call.client_address))


def login_with_code(call: Call):
    return _tokens(call, call.rpc.call("identity", "login_with_code", _dump(call.body)))


def refresh_session(call: Call):
    return _tokens(call, call.rpc.call("identity", "refresh_session", _dump(call.body)))


def logout(call: Call):
    return call.rpc.call("identity", "logout", _dump(call.body))


def staff_token(call: Call):
    return _tokens(call, call.rpc.call("identity", "authenticate_staff", _dump(call.body), call.client_address))


def reset_password_with_code(call: Call):
    return call.rpc.call("identity", "reset_password_with_code", _dump(call.body))


def security_question(call: Call):
    return call.rpc.call("identity", "security_question", _dump(call.body))


def reset_password_with_answer(call: Call):
    return call.rpc.call("identity", "reset_password_with_answer", _dump(call.body), call.client_address)


def lookup_ticket(call: Call):
    return call.rpc.call("identity", "lookup_ticket", _dump(call.body))


def dev_sms_messages(call: Call):
    return call.rpc.call("identity", "dev_sms_messages", _dump(call.body))


def my_profile(call: Call):
    return call.rpc.call("identity", "get_candidate", call.actor, call.principal.subject)


def candidate_profile(call: Call):
    return call.rpc.call("identity", "get_candidate", call.actor, call.params["candidate_id"])


def confirm_my_identity(call: Call):
    return call.rpc.call("identity", "confirm_identity", call.actor, call.principal.subject, _dump(call.body))


def confirm_identity_on_site(call: Call):
    return call.rpc.call("identity", "confirm_identity_on_site", call.actor, call.params["candidate_id"],
                         _dump(call.body))


def change_my_password(call: Call):
    return call.rpc.call("identity", "change_password", call.actor, _dump(call.body))


def set_my_security_question(call: Call):
    return call.rpc.call("identity", "set_security_question", call.actor, _dump(call.body))


def institution_token(call: Call):
    return _tokens(call, call.rpc.call("identity", "authenticate_institution", _dump(call.body),
                                       call.client_address))


def create_institution(call: Call):
    return call.rpc.call("identity", "create_institution", call.actor, _dump(call.body))


def register_student(call: Call):
    return call.rpc.call("identity", "register_student", call.actor, _dump(call.body))


def prior_education_of(call: Call):
    return call.rpc.call("identity", "prior_education_of", call.actor, call.params["candidate_id"])


def institution_students(call: Call):
    return call.rpc.call("identity", "institution_students", call.actor)


def import_legacy_tickets(call: Call):
    return call.rpc.call("identity", "import_legacy_tickets", call.actor, _dump(call.body))


def my_tickets(call: Call):
    return call.rpc.call("identity", "my_tickets", call.actor)


def choose_primary_ticket(call: Call):
    return call.rpc.call("identity", "choose_primary_ticket", call.actor, _dump(call.body))


def merge_tickets(call: Call):
    return call.rpc.call("identity", "merge_tickets", call.actor, _dump(call.body))


def submit_prior_education(call: Call):
    return call.rpc.call("identity", "submit_prior_education", call.actor, _dump(call.body))


def submit_prior_education_proof(call: Call):
    return call.rpc.call("identity", "submit_prior_education_proof", call.actor, _dump(call.body))


def decide_prior_education(call: Call):
    return call.rpc.call("identity", "decide_prior_education", call.actor, call.params["candidate_id"],
                         _dump(call.body))


def import_results(call: Call):
    import base64

    file_format = call.query.get("format", "csv")
    return call.rpc.call("scoring", "import_results", call.actor, {
        "file_format": file_format, "content_base64": base64.b64encode(call.raw_body).decode("ascii")})


def import_report(call: Call):
    return call.rpc.call("scoring", "import_report", call.actor, call.params["batch_id"])


def list_releases(call: Call):
    return call.rpc.call("scoring", "list_releases", call.actor)


def cancel_release(call: Call):
    return call.rpc.call("scoring", "cancel_release", call.actor, call.params["release_id"])


def import_errors_csv(call: Call) -> str:
    import csv
    import io

    report = call.rpc.call("scoring", "import_report", call.actor, call.params["batch_id"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "field", "message"])
    for error in report["errors"]:
        writer.writerow([error["line"], error["field"] or "", error["message"]])
    return out.getvalue()


def result_history(call: Call):
    return call.rpc.call("scoring", "result_history", call.actor, call.params["result_id"])


def list_programs(call: Call):
    return call.rpc.call("scoring", "list_programs")


def transfer_region(call: Call):
    return call.rpc.call("identity", "transfer_region", call.actor, call.params["candidate_id"], _dump(call.body))


def create_staff_account(call: Call):
    return call.rpc.call("identity", "create_staff_account", call.actor, _dump(call.body))


def evaluation_queue(call: Call):
    return call.rpc.call("scoring", "evaluation_queue", call.actor, call.query.get("program_code", ""),
                         call.query.get("sitting", ""))


def evaluate_result(call: Call):
    return call.rpc.call("scoring", "evaluate_result", call.actor, call.params["result_id"], _dump(call.body))


def decide_held_result(call: Call):
    return call.rpc.call("scoring", "decide_held_result", call.actor, call.params["result_id"], _dump(call.body))


def request_score_review(call: Call):
    return call.rpc.call("scoring", "request_score_review", call.actor, call.params["result_id"], _dump(call.body))


def my_score_reviews(call: Call):
    return call.rpc.call("scoring", "score_reviews", call.actor, call.principal.subject)


def close_score_review(call: Call):
    return call.rpc.call("scoring", "close_score_review", call.actor, call.params["review_id"], _dump(call.body))


def open_score_reviews(call: Call):
    return call.rpc.call("scoring", "open_score_reviews", call.actor)


def correct_result(call: Call):
    return call.rpc.call("scoring", "correct_result", call.actor, call.params["result_id"], _dump(call.body))


def grant_exemption(call: Call):
    return call.rpc.call("scoring", "grant_exemption", call.actor, _dump(call.body))


def my_record(call: Call):
    return call.rpc.call("scoring", "candidate_record", call.actor, call.principal.subject)


def candidate_record(call: Call):
    return call.rpc.call("scoring", "candidate_record", call.actor, call.params["candidate_id"])


def my_results(call: Call):
    # the principal, not a signed actor: the batch of reads it rides in is signed once (ActorSigner.sign_batch)
    return call.rpc.candidate_results(call.principal, call.principal.subject)


def my_certificates(call: Call):
    return call.rpc.call("certificates", "certificates_for_candidate", call.actor, call.principal.subject)


def my_certificate(call: Call):
    return call.rpc.call("certificates", "certificate", call.actor, call.params["certificate_id"])


def certificate_by_number(call: Call):
    return call.rpc.call("certificates", "certificate_by_number", call.actor, call.params["certificate_number"])


def certificate_history(call: Call):
    return call.rpc.call("certificates", "certificate_history", call.actor, call.params["certificate_id"])


def confirm_certificate(call: Call):
    return call.rpc.call("certificates", "confirm_certificate", call.actor, call.params["certificate_id"],
                         _dump(call.body))


def request_certificate_correction(call: Call):
    return call.rpc.call("certificates", "request_correction", call.actor, call.params["certificate_id"],
                         _dump(call.body))


def certificate_correction_requests(call: Call):
    return call.rpc.call("certificates", "correction_requests", call.actor, call.query.get("all") not in
                         ("1", "true", "yes"))


def decide_certificate_correction(call: Call):
    return call.rpc.call("certificates", "decide_correction", call.actor, call.params["request_id"],
                         _dump(call.body))


def revoke_certificate(call: Call):
    return call.rpc.call("certificates", "revoke_certificate", call.actor, call.params["certificate_id"],
                         _dump(call.body))


def apply_for_replacement(call: Call):
    return call.rpc.call("certificates", "apply_for_replacement", call.actor, call.params["certificate_id"],
                         _dump(call.body))


def replacement_applications(call: Call):
    return call.rpc.call("certificates", "replacement_applications", call.actor, call.query.get("status") or None)


def start_replacement(call: Call):
    return call.rpc.call("certificates", "start_replacement", call.actor, call.params["application_id"])


def complete_replacement(call: Call):
    return call.rpc.call("certificates", "complete_replacement", call.actor, call.params["application_id"])


def cancel_replacement(call: Call):
    return call.rpc.call("certificates", "cancel_replacement", call.actor, call.params["application_id"],
                         _dump(call.body))


def production_batches(call: Call):
    return call.rpc.call("certificates", "production_batches", call.actor)


def close_batch(call: Call):
    return call.rpc.call("certificates", "close_batch", call.actor, call.params["batch_id"])


def batch_csv(call: Call):
    return call.rpc.call("certificates", "batch_csv", call.actor, call.params["batch_id"])


def batch_proof_pdf(call: Call):
    import base64

    return base64.b64decode(call.rpc.call("certificates", "batch_proof_pdf", call.actor, call.params["batch_id"]))


def ship_certificate(call: Call):
    return call.rpc.call("certificates", "ship_certificate", call.actor, call.params["certificate_id"],
                         _dump(call.body))


def mark_delivered(call: Call):
    return call.rpc.call("certificates", "mark_delivered", call.actor, call.params["certificate_id"])


def overdue_shipments(call: Call):
    return call.rpc.call("certificates", "overdue_shipments", call.actor)


def my_payment_orders(call: Call):
    return call.rpc.call("payments", "orders_for_payer", call.actor, "candidate", call.principal.subject)


def record_results(call: Call):
    return call.rpc.call("scoring", "record_results", call.actor, _dump(call.body))


def publish_results(call: Call):
    return call.rpc.call("scoring", "publish_results", call.actor, _dump(call.body))


def fee_schedule(call: Call):
    return call.rpc.call("payments", "fee_schedule")


def set_fee(call: Call):
    return call.rpc.call("payments", "set_fee", call.actor, call.params["fee_code"], _dump(call.body))


def my_payment_dues(call: Call):
    return call.rpc.call("payments", "dues_for_payer", call.actor, "candidate", call.principal.subject)


def institution_payment_dues(call: Call):
    return call.rpc.call("payments", "dues_for_payer", call.actor, "institution", call.principal.subject)


def institution_payment_orders(call: Call):
    return call.rpc.call("payments", "orders_for_payer", call.actor, "institution", call.principal.subject)


def _header(call: Call, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in call.headers.items() if key.lower() == wanted), None)


def create_payment_order(call: Call):
    return call.rpc.call("payments", "create_order", call.actor, _dump(call.body), _header(call, "Idempotency-Key"))


def payment_order(call: Call):
    return call.rpc.call("payments", "order", call.actor, call.params["order_number"])


def close_payment_order(call: Call):
    return call.rpc.call("payments", "close_order", call.actor, call.params["order_number"])


NOT_FORWARDED_TO_PROVIDER_HANDLING = ("authorization", "cookie")


def payment_notification(call: Call):
    from credence_common.errors import BadRequest

    try:
        text = call.raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("malformed_body", "The notification body must be UTF-8 JSON.") from None
    headers = {k: v for k, v in call.headers.items() if k.lower() not in NOT_FORWARDED_TO_PROVIDER_HANDLING}
    return call.rpc.call("payments", "handle_notification", call.params["provider"], text, headers)


def sandbox_provider_payment(call: Call):
    return call.rpc.call("payments", "sandbox_pay", call.actor, call.params["order_number"], _dump(call.body))


def request_refund(call: Call):
    return call.rpc.call("payments", "request_refund", call.actor, _dump(call.body))


def list_refunds(call: Call):
    return call.rpc.call("payments", "refunds", call.actor, call.query.get("overdue") in ("1", "true", "yes"),
                         call.query.get("order_number") or None)


def payment_incidents(call: Call):
    return call.rpc.call("payments", "incidents", call.actor, call.query.get("flagged") in ("1", "true", "yes"))


def payment_reconciliation(call: Call):
    return call.rpc.call("payments", "reconcile", call.actor, call.params["day"])


def request_report(call: Call):
    return call.rpc.call("verification", "request_report", call.actor, _dump(call.body))


def my_reports(call: Call):
    return call.rpc.call("verification", "my_reports", call.actor)


def close_report(call: Call):
    return call.rpc.call("verification", "close_report", call.actor, call.params["report_code"])


def extend_report(call: Call):
    return call.rpc.call("verification", "extend_report", call.actor, call.params["report_code"])


def report_pdf(call: Call):
    import base64

    return base64.b64decode(call.rpc.call("verification", "report_pdf", call.actor, call.params["report_code"]))


def report_answer(call: Call):
    return call.rpc.call("verification", "report_answer", call.params["report_code"])


def report_public_key(call: Call):
    return call.rpc.call("verification", "report_public_key")


def create_share_code(call: Call):
    return call.rpc.call("verification", "create_share_code", call.actor, call.params["report_code"],
                         _dump(call.body))


def my_share_codes(call: Call):
    return call.rpc.call("verification", "share_codes", call.actor)


def revoke_share_code(call: Call):
    return call.rpc.call("verification", "revoke_share_code", call.actor, call.params["share_id"])


def open_shared_report(call: Call):
    return call.rpc.call("verification", "open_shared_report", _dump(call.body))


def my_accesses(call: Call):
    return call.rpc.call("verification", "my_accesses", call.actor)


def public_certificate_check(call: Call):
    return call.rpc.public_check(_dump(call.body), call.client_address)


ANY_SIGNED_IN = ("candidate", "institution", "staff")
NOT_REPLAYED = False  # replayable=NOT_REPLAYED: the answer is or holds a credential (see Route.replayable)

ROUTES: tuple[Route, ...] = (
    Route("request_mobile_code", "POST", "/api/v1/mobile-codes",
          "Text a 6-digit code to a mobile number (registration, password reset, ticket look-up)",
          ("public",), request_mobile_code, RequestMobileCode, MobileCodeSent, 202, rate_limited=True,
          tag="candidates"),
    Route("register_candidate", "POST", "/api/v1/candidates", "Pre-register a candidate under their real name",
          ("public",), register_candidate, RegisterCandidate, CandidateView, 201, rate_limited=True,
          tag="candidates"),
    Route("login", "POST", "/api/v1/auth/login", "Sign in with email or mobile and password",
          ("public",), login, Login, TokenResponse, rate_limited=True, tag="auth", replayable=NOT_REPLAYED),
    Route("login_with_code", "POST", "/api/v1/auth/code-login",
          "本人查询: sign in with a code texted for 'sign_in' to your registered mobile", ("public",),
          login_with_code, CodeLogin, TokenResponse, rate_limited=True, tag="auth", replayable=NOT_REPLAYED),
    Route("refresh_session", "POST", "/api/v1/auth/refresh", "Exchange a refresh token for new tokens",
          ("public",), refresh_session, RefreshTokenRequest, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("logout", "POST", "/api/v1/auth/logout", "Revoke a refresh token",
          ("public",) + ANY_SIGNED_IN, logout, RefreshTokenRequest, Done, tag="auth"),
    Route("staff_token", "POST", "/api/v1/auth/staff-token", "Sign in as staff",
          ("public",), staff_token, StaffCredentials, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("reset_password_with_code", "POST", "/api/v1/password-resets/by-code",
          "Set a new password with a code texted for 'password_reset'", ("public",), reset_password_with_code,
          ResetPasswordWithCode, Done, rate_limited=True, tag="auth"),
    Route("security_question", "POST", "/api/v1/password-resets/security-question",
          "The security question of a login name", ("public",), security_question, SecurityQuestionRequest,
          SecurityQuestionView, rate_limited=True, tag="auth"),
    Route("reset_password_with_answer", "POST", "/api/v1/password-resets/by-answer",
          "Set a new password by answering the security question", ("public",), reset_password_with_answer,
          ResetPasswordWithAnswer, Done, rate_limited=True, tag="auth"),
    Route("lookup_ticket", "POST", "/api/v1/ticket-lookups",
          "A forgotten admission ticket number, with a code texted for 'ticket_lookup'", ("public",),
          lookup_ticket, TicketLookup, TicketLookupResult, rate_limited=True, tag="candidates"),
    Route("dev_sms_messages", "POST", "/api/v1/dev/sms-messages",
          "Development only: texts the dev SMS adapter kept for a number (404 elsewhere)", ("public",),
          dev_sms_messages, DevSmsQuery, DevSmsMessages, tag="development", development_only=True,
          replayable=NOT_REPLAYED),
    Route("my_profile", "GET", "/api/v1/me", "The signed-in candidate's registration (masked)",
          ("candidate",), my_profile, None, CandidateView, tag="candidates"),
    Route("confirm_my_identity", "POST", "/api/v1/me/identity-confirmation",
          "Confirm identity online (ID card image + liveness) and receive the admission ticket number",
          ("candidate",), confirm_my_identity, ConfirmIdentityOnline, CandidateView, tag="candidates"),
    Route("change_my_password", "POST", "/api/v1/me/password", "Change the password (every session must sign in again)",
          ("candidate",), change_my_password, ChangePassword, Done, tag="auth"),
    Route("set_my_security_question", "PUT", "/api/v1/me/security-question",
          "Set the security question used for password reset", ("candidate",), set_my_security_question,
          SetSecurityQuestion, Done, tag="auth"),
    Route("candidate_profile", "GET", "/api/v1/candidates/<candidate_id>",
          "A candidate's registration (staff; an institution for its own students)", ("staff", "institution"),
          candidate_profile, None, CandidateView, tag="candidates"),
    Route("confirm_identity_on_site", "POST", "/api/v1/candidates/<candidate_id>/identity-confirmation",
          "Approve or reject a candidate's identity on site (staff; an institution for its own students)",
          ("staff", "institution"), confirm_identity_on_site, ConfirmIdentityOnSite, CandidateView,
          tag="candidates"),
    Route("institution_token", "POST", "/api/v1/auth/institution-token", "Sign in as a training institution's staff",
          ("public",), institution_token, InstitutionCredentials, TokenResponse, rate_limited=True, tag="auth",
          replayable=NOT_REPLAYED),
    Route("create_institution", "POST", "/api/v1/institutions",
          "Register a training institution and its first staff account (staff)", ("staff",), create_institution,
          CreateInstitution, InstitutionView, 201, tag="institutions"),
    Route("institution_students", "GET", "/api/v1/institution/students", "The institution's own candidates",
          ("institution",), institution_students, None, CandidateList, tag="institutions"),
    Route("register_student", "POST", "/api/v1/institution/students",
          "Register a student (with the code texted to the student; the student then sets a password by reset)",
          ("institution",), register_student, RegisterStudent, CandidateView, 201, tag="institutions"),
    Route("prior_education_of", "GET", "/api/v1/candidates/<candidate_id>/prior-education",
          "The latest prior-degree check with its proof reference (staff)", ("staff",), prior_education_of, None,
          PriorEducationView, tag="candidates"),
    Route("import_legacy_tickets", "POST", "/api/v1/legacy-tickets",
          "Import admission ticket numbers issued before this platform (all or none; staff)", ("staff",),
          import_legacy_tickets, ImportLegacyTickets, ImportOutcome, tag="candidates"),
    Route("my_tickets", "GET", "/api/v1/me/tickets", "The candidate's primary and other ticket numbers",
          ("candidate",), my_tickets, None, MyTickets, tag="candidates"),
    Route("choose_primary_ticket", "POST", "/api/v1/me/tickets/primary", "Choose which ticket number is primary",
          ("candidate",), choose_primary_ticket, ChoosePrimaryTicket, MyTickets, tag="candidates"),
    Route("merge_tickets", "POST", "/api/v1/me/ticket-merges",
          "Merge other ticket numbers into the primary one (their results move too)", ("candidate",),
          merge_tickets, MergeTickets, MyTickets, tag="candidates"),
    Route("submit_prior_education", "POST", "/api/v1/me/prior-education",
          "Degree-upgrade candidates: have the prior degree checked against the registry", ("candidate",),
          submit_prior_education, SubmitPriorEducation, CandidateView, tag="candidates"),
    Route("submit_prior_education_proof", "POST", "/api/v1/me/prior-education/proof",
          "Upload a proof of the prior degree when the registry has no record", ("candidate",),
          submit_prior_education_proof, SubmitPriorEducationProof, CandidateView, tag="candidates"),
    Route("decide_prior_education", "POST", "/api/v1/candidates/<candidate_id>/prior-education/decision",
          "Approve or reject an uploaded prior-degree proof (staff)", ("staff",), decide_prior_education,
          DecidePriorEducation, CandidateView, tag="candidates"),
    Route("my_results", "GET", "/api/v1/me/results", "The candidate's exam results (scores hidden until release)",
          ("candidate",), my_results, None, ResultList, tag="scoring"),
    Route("my_certificates", "GET", "/api/v1/me/certificates", "The candidate's certificates",
          ("candidate",), my_certificates, None, CertificateList, tag="certificates"),
    Route("my_certificate", "GET", "/api/v1/me/certificates/<certificate_id>", "One of the candidate's "
          "certificates (or applications)", ("candidate",), my_certificate, None, CertificateView,
          tag="certificates"),
    Route("confirm_certificate", "POST", "/api/v1/me/certificates/<certificate_id>/confirmation",
          "Confirm what will be printed (locks it; the fee falls due to you or your institution)", ("candidate",),
          confirm_certificate, ConfirmCertificate, CertificateView, tag="certificates"),
    Route("request_certificate_correction", "POST", "/api/v1/me/certificates/<certificate_id>/correction-requests",
          "Before confirming: ask staff to correct the name or photo to be printed", ("candidate",),
          request_certificate_correction, RequestCorrection, CorrectionRequestView, 201, tag="certificates"),
    Route("my_certificate_history", "GET", "/api/v1/me/certificates/<certificate_id>/history",
          "Every step of the certificate, in order", ("candidate",), certificate_history, None,
          CertificateHistoryView, tag="certificates"),
    Route("certificate_by_number", "GET", "/api/v1/certificates/by-number/<certificate_number>",
          "A certificate found by its number, with its id, status and delivery (staff)", ("staff",),
          certificate_by_number, None, CertificateView, tag="certificates"),
    Route("certificate_history", "GET", "/api/v1/certificates/<certificate_id>/history",
          "Every step of a certificate, in order (staff)", ("staff",), certificate_history, None,
          CertificateHistoryView, tag="certificates"),
    Route("certificate_correction_requests", "GET", "/api/v1/certificate-correction-requests",
          "Open correction requests, oldest first (?all=true: decided ones too; staff)", ("staff",),
          certificate_correction_requests, None, CorrectionRequestList, tag="certificates"),
    Route("decide_certificate_correction", "POST", "/api/v1/certificate-correction-requests/<request_id>/decision",
          "Accept (the printed detail changes) or reject a correction request, with a note (staff)", ("staff",),
          decide_certificate_correction, DecideCorrection, CorrectionRequestView, tag="certificates"),
    Route("revoke_certificate", "POST", "/api/v1/certificates/<certificate_id>/revocation",
          "Revoke an issued certificate with a reason (staff); public checks stop answering valid",
          ("staff",), revoke_certificate, RevokeCertificate, CertificateView, tag="certificates"),
    Route("apply_for_replacement", "POST", "/api/v1/me/certificates/<certificate_id>/replacement-applications",
          "Apply for a reissue (补办, 10000 fen) or a correction-and-replacement (勘误更换, 20000 fen, with the "
          "identity video); it cannot be withdrawn", ("candidate",), apply_for_replacement, ApplyForReplacement,
          ReplacementApplicationView, 201, tag="certificates"),
    Route("my_replacement_applications", "GET", "/api/v1/me/replacement-applications",
          "The candidate's reissue and correction applications, with any cancellation reason", ("candidate",),
          replacement_applications, None, ReplacementApplicationList, tag="certificates"),
    Route("replacement_applications", "GET", "/api/v1/replacement-applications",
          "Reissue and correction applications (?status=pending|processing|...; staff)", ("staff",),
          replacement_applications, None, ReplacementApplicationList, tag="certificates"),
    Route("start_replacement", "POST", "/api/v1/replacement-applications/<application_id>/start",
          "Take a paid application into processing (办理中; staff)", ("staff",), start_replacement, None,
          ReplacementApplicationView, tag="certificates"),
    Route("complete_replacement", "POST", "/api/v1/replacement-applications/<application_id>/completion",
          "Issue the new certificate; the old one is superseded (staff)", ("staff",), complete_replacement, None,
          ReplacementApplicationView, tag="certificates"),
    Route("cancel_replacement", "POST", "/api/v1/replacement-applications/<application_id>/cancellation",
          "Cancel a paid application with a reason the candidate reads; the fee is refunded (staff)", ("staff",),
          cancel_replacement, CancelReplacement, ReplacementApplicationView, tag="certificates"),
    Route("production_batches", "GET", "/api/v1/production-batches",
          "Production batches, newest first, with how many certificates each holds (staff)", ("staff",),
          production_batches, None, BatchList, tag="certificates"),
    Route("close_batch", "POST", "/api/v1/production-batches/<batch_id>/closure",
          "Close a batch for the printer; certificates issued from now on join the next one (staff)", ("staff",),
          close_batch, None, BatchView, tag="certificates"),
    Route("batch_csv", "GET", "/api/v1/production-batches/<batch_id>/export.csv",
          "The batch for the printer, as CSV (UTF-8 with BOM; staff)", ("staff",), batch_csv, None, None,
          content_type="text/csv; charset=utf-8", tag="certificates"),
    Route("batch_proof_pdf", "GET", "/api/v1/production-batches/<batch_id>/proof.pdf",
          "The batch's proof sheet, as PDF (staff)", ("staff",), batch_proof_pdf, None, None,
          content_type="application/pdf", tag="certificates"),
    Route("ship_certificate", "POST", "/api/v1/certificates/<certificate_id>/shipment",
          "Record the courier and tracking number of a printed certificate (staff)", ("staff",), ship_certificate,
          ShipCertificate, CertificateView, tag="certificates"),
    Route("mark_delivered", "POST", "/api/v1/certificates/<certificate_id>/delivery",
          "Record that a shipped certificate was delivered (staff)", ("staff",), mark_delivered, None,
          CertificateView, tag="certificates"),
    Route("overdue_shipments", "GET", "/api/v1/certificates/overdue-shipments",
          "Issued certificates not shipped within their 30-working-day promise (staff)", ("staff",),
          overdue_shipments, None, CertificateList, tag="certificates"),
    Route("my_payment_orders", "GET", "/api/v1/me/payment-orders", "Payment orders the candidate has to pay",
          ("candidate",), my_payment_orders, None, PaymentOrderList, tag="payments"),
    Route("list_programs", "GET", "/api/v1/programs", "Exam programs with their rules and courses",
          ("public",) + ANY_SIGNED_IN, list_programs, None, ProgramList, tag="scoring"),
    Route("import_results", "POST", "/api/v1/result-imports",
          "Import an exam centre's result file (body: the CSV or JSON Lines file; ?format=csv|jsonl); all rows "
          "or none, idempotent", ("staff",), import_results, None, ImportReportView, raw_body=True,
          max_body_bytes=16 * 1024 * 1024, tag="scoring"),
    Route("import_report", "GET", "/api/v1/result-imports/<batch_id>",
          "An import batch with its row-error report (staff)", ("staff",), import_report, None, None, tag="scoring"),
    Route("list_releases", "GET", "/api/v1/releases", "Releases, newest first: scheduled, published, cancelled "
          "(staff)", ("staff",), list_releases, None, ReleaseList, tag="scoring"),
    Route("cancel_release", "POST", "/api/v1/releases/<release_id>/cancellation",
          "Cancel a scheduled release before its time (staff)", ("staff",), cancel_release, None, ReleaseView,
          tag="scoring"),
    Route("import_errors_csv", "GET", "/api/v1/result-imports/<batch_id>/errors.csv",
          "The row-error report of an import as a CSV file, to open next to the uploaded file (staff)", ("staff",),
          import_errors_csv, None, None, content_type="text/csv; charset=utf-8", tag="scoring"),
    Route("result_history", "GET", "/api/v1/results/<result_id>/history",
          "Every change to a result: who, when, before, after, why (staff)", ("staff",), result_history, None,
          None, tag="scoring"),
    Route("transfer_region", "POST", "/api/v1/candidates/<candidate_id>/transfer",
          "Move a candidate's exam record to another exam region (转考; staff)", ("staff",), transfer_region,
          TransferRegion, CandidateView, tag="candidates"),
    Route("create_staff_account", "POST", "/api/v1/staff-accounts", "Create another staff account (staff)",
          ("staff",), create_staff_account, CreateStaffAccount, StaffAccountView, 201, tag="auth"),
    Route("evaluation_queue", "GET", "/api/v1/evaluations",
          "Composite results awaiting the experts (?program_code=&sitting=), with the formula's suggestion",
          ("staff",), evaluation_queue, None, EvaluationQueue, tag="scoring"),
    Route("evaluate_result", "POST", "/api/v1/results/<result_id>/evaluations",
          "An expert signs a composite result passed or failed; two different experts must agree", ("staff",),
          evaluate_result, EvaluateResult, None, tag="scoring"),
    Route("decide_held_result", "POST", "/api/v1/results/<result_id>/decision",
          "Settle a result the two experts disagree on (a third member of staff)", ("staff",), decide_held_result,
          DecideHeldResult, None, tag="scoring"),
    Route("request_score_review", "POST", "/api/v1/me/results/<result_id>/review",
          "Ask for a re-check (复查) of one released result, within the program's window", ("candidate",),
          request_score_review, RequestScoreReview, ScoreReviewView, 201, tag="scoring"),
    Route("my_score_reviews", "GET", "/api/v1/me/score-reviews", "The candidate's re-check requests",
          ("candidate",), my_score_reviews, None, ScoreReviewList, tag="scoring"),
    Route("close_score_review", "POST", "/api/v1/score-reviews/<review_id>/closure",
          "Close a re-check as unchanged or corrected (a correction emits result_corrected; staff)", ("staff",),
          close_score_review, CloseScoreReview, ScoreReviewView, tag="scoring"),
    Route("open_score_reviews", "GET", "/api/v1/score-reviews", "Open re-check requests, oldest first (staff)",
          ("staff",), open_score_reviews, None, ScoreReviewList, tag="scoring"),
    Route("correct_result", "POST", "/api/v1/results/<result_id>/correction",
          "Correct a result before its release, with a reason (staff; experts sign again)", ("staff",),
          correct_result, CorrectResult, None, tag="scoring"),
    Route("grant_exemption", "POST", "/api/v1/exemptions", "Exempt a candidate from a course (免考; staff)",
          ("staff",), grant_exemption, GrantExemption, CandidateRecord, 201, tag="scoring"),
    Route("my_record", "GET", "/api/v1/me/record",
          "The exam record (考籍): tickets, passed and exempted courses, violations, graduation", ("candidate",),
          my_record, None, CandidateRecord, tag="scoring"),
    Route("candidate_record", "GET", "/api/v1/candidates/<candidate_id>/record", "A candidate's exam record (staff)",
          ("staff",), candidate_record, None, CandidateRecord, tag="scoring"),
    Route("record_results", "POST", "/api/v1/exam-results", "Record a batch of exam results (all or none)",
          ("staff",), record_results, RecordResults, RecordResultsOutcome, tag="scoring"),
    Route("publish_results", "POST", "/api/v1/exam-results/publication",
          "Release a sitting's results to candidates", ("staff",), publish_results, PublishResults,
          PublishResultsOutcome, tag="scoring"),
    Route("fee_schedule", "GET", "/api/v1/fees", "The fee schedule (amounts in fen)", ("public",) + ANY_SIGNED_IN,
          fee_schedule, None, FeeSchedule, tag="payments"),
    Route("set_fee", "PUT", "/api/v1/fees/<fee_code>", "Add a fee or change its amount (staff; open dues keep "
          "their price)", ("staff",), set_fee, SetFee, FeeView, tag="payments"),
    Route("my_payment_dues", "GET", "/api/v1/me/payment-dues", "What the candidate has to pay, and what they paid",
          ("candidate",), my_payment_dues, None, DueList, tag="payments"),
    Route("institution_payment_dues", "GET", "/api/v1/institution/payment-dues",
          "Fees the institution pays for its candidates (待机构代缴)", ("institution",), institution_payment_dues,
          None, DueList, tag="payments"),
    Route("institution_payment_orders", "GET", "/api/v1/institution/payment-orders",
          "The institution's payment orders", ("institution",), institution_payment_orders, None, PaymentOrderList,
          tag="payments"),
    Route("create_payment_order", "POST", "/api/v1/payment-orders",
          "Open an order for one or more of your dues (an institution: many candidates at once); the same "
          "Idempotency-Key, or the same dues while the order is open, returns the same order",
          ("candidate", "institution"), create_payment_order, CreatePaymentOrder, PaymentOrderView, 201,
          tag="payments", header_params=(("Idempotency-Key", False, "Your key for this request (1-64 ASCII); "
                                          "a retry with it never opens a second order"),)),
    Route("payment_order", "GET", "/api/v1/payment-orders/<order_number>",
          "One order (its payer; staff also see the payer, the provider transaction and the invoice details)",
          ("candidate", "institution", "staff"), payment_order, None, PaymentOrderView, tag="payments"),
    Route("close_payment_order", "POST", "/api/v1/payment-orders/<order_number>/closure",
          "Close an unpaid order (its payer or staff); the provider is asked first, so a payment on its way counts",
          ("candidate", "institution", "staff"), close_payment_order, None, PaymentOrderView, tag="payments"),
    Route("payment_notification", "POST", "/api/v1/payments/notifications/<provider>",
          "A payment provider's asynchronous notification, signed with its private key", ("public",),
          payment_notification, None, NotificationAcknowledgement, raw_body=True, max_body_bytes=64 * 1024,
          tag="payments", documented_body=SandboxNotification, replayable=False,  # nonce and transaction id
          header_params=(("Sandbox-Timestamp", True, "Unix seconds; refused when more than 300 s off"),
                         ("Sandbox-Nonce", True, "Random; a notification seen before is a replay"),
                         ("Sandbox-Signature", True, "base64 Ed25519 or RSA-SHA256 signature of "
                          "timestamp\\nnonce\\nbody\\n"),
                         ("Sandbox-Serial", False, "Which provider key signed"))),
    Route("sandbox_provider_payment", "POST", "/api/v1/sandbox-provider/orders/<order_number>/payment",
          "Development only: pay an order at the sandbox provider (it then notifies us, signed; 404 elsewhere)",
          ("candidate", "institution", "staff"), sandbox_provider_payment, SandboxPayment, SandboxPaymentOutcome,
          tag="development", development_only=True),
    Route("request_refund", "POST", "/api/v1/refunds",
          "Refund part or all of a paid order to the original payment path (staff; never more than was paid)",
          ("staff",), request_refund, RequestRefund, RefundView, 201, tag="payments"),
    Route("list_refunds", "GET", "/api/v1/refunds",
          "Refunds with their 3-working-day promise (?overdue=true, ?order_number=; staff)", ("staff",),
          list_refunds, None, RefundList, tag="payments"),
    Route("payment_incidents", "GET", "/api/v1/payment-incidents",
          "Refused notifications and requests (?flagged=true: money may sit at the provider; staff)", ("staff",),
          payment_incidents, None, IncidentList, tag="payments"),
    Route("payment_reconciliation", "GET", "/api/v1/payment-reconciliations/<day>",
          "The provider's statement for a Beijing business day against our ledger, every mismatch listed (staff)",
          ("staff",), payment_reconciliation, None, ReconciliationReport, tag="payments"),
    Route("request_report", "POST", "/api/v1/me/verification-reports",
          "Ask for a signed verification report of one of your certificates or of your exam record (valid 30 days, "
          "with a QR code)",
          ("candidate",), request_report, RequestReport, ReportView, 201, tag="verification"),
    Route("my_reports", "GET", "/api/v1/me/verification-reports", "Your verification reports, newest first",
          ("candidate",), my_reports, None, ReportList, tag="verification"),
    Route("close_report", "POST", "/api/v1/me/verification-reports/<report_code>/closure",
          "Close a report before it expires", ("candidate",), close_report, None, ReportView, tag="verification"),
    Route("extend_report", "POST", "/api/v1/me/verification-reports/<report_code>/extension",
          "Keep a report open for 30 more days from today", ("candidate",), extend_report, None, ReportView,
          tag="verification"),
    Route("report_pdf", "GET", "/api/v1/me/verification-reports/<report_code>/report.pdf",
          "The report as PDF, with its QR code", ("candidate",), report_pdf, None, None,
          content_type="application/pdf", tag="verification"),
    Route("report_answer", "GET", "/api/v1/verification-reports/<report_code>",
          "Today's answer for a report code (what its QR code opens), with the signed document",
          ("public",) + ANY_SIGNED_IN, report_answer, None, ReportAnswer, rate_limited=True, tag="verification"),
    Route("report_public_key", "GET", "/api/v1/verification-reports/public-key",
          "The Ed25519 public key that verifies downloaded reports offline", ("public",) + ANY_SIGNED_IN,
          report_public_key, None, ReportPublicKey, tag="verification"),
    Route("create_share_code", "POST", "/api/v1/me/verification-reports/<report_code>/share-codes",
          "A one-time code that opens the full report for an employer, for a limited time (shown once)",
          ("candidate",), create_share_code, CreateShareCode, ShareCodeCreated, 201, tag="verification",
          replayable=NOT_REPLAYED),
    Route("my_share_codes", "GET", "/api/v1/me/share-codes", "Your share codes and whether each is still open",
          ("candidate",), my_share_codes, None, ShareCodeList, tag="verification"),
    Route("revoke_share_code", "POST", "/api/v1/me/share-codes/<share_id>/revocation",
          "Withdraw a share code before it is used", ("candidate",), revoke_share_code, None, ShareCodeList,
          tag="verification"),
    Route("my_accesses", "GET", "/api/v1/me/certificate-accesses",
          "Who opened your full reports (with who they said they are and why) and when your certificates were "
          "checked", ("candidate",), my_accesses, None, AccessList, tag="verification"),
    Route("open_shared_report", "POST", "/api/v1/shared-reports",
          "A verifier opens a full report with the holder's share code, stating who they are and why (once)",
          ("public",) + ANY_SIGNED_IN, open_shared_report, OpenSharedReport, FullReport, rate_limited=True,
          tag="verification"),
    Route("public_certificate_check", "POST", "/api/v1/certificate-checks",
          "Check a certificate by holder name and certificate number", ("public",) + ANY_SIGNED_IN,
          public_certificate_check, PublicCheck, PublicCheckResult, rate_limited=True, tag="verification",
          replayable=False),
)


def mounted_routes(environment: str) -> tuple[Route, ...]:
    """The routes a gateway in ``environment`` serves and documents: development-only ones only in development."""
    return tuple(route for route in ROUTES if environment == "development" or not route.development_only)
