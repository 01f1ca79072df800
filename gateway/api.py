"""The HTTP API as data: one ``Route`` per endpoint, its roles, its request and response models and a
handler that only forwards to a service. The nameko binding (``service.py``) and the OpenAPI document
(``openapi.py``) are both generated from this table, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from credence_common.contracts.certificates import CertificateList
from credence_common.contracts.identity import (
    CandidateCredentials,
    CandidateView,
    ConfirmIdentity,
    RegisterCandidate,
    StaffCredentials,
)
from credence_common.contracts.payments import CallbackAcknowledgement, PaymentOrderList, SandboxCallback
from credence_common.contracts.scoring import (
    PublishResults,
    PublishResultsOutcome,
    RecordResults,
    RecordResultsOutcome,
    ResultList,
)
from credence_common.contracts.verification import PublicCheck, PublicCheckResult
from gateway.auth import Principal


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


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
    rate_limited: bool = False
    tag: str = "api"


def _dump(model: BaseModel | None) -> dict | None:
    return model.model_dump(mode="json") if model is not None else None


# --- handlers: forward, never decide -------------------------------------------------------------

def register_candidate(call: Call):
    return call.rpc.call("identity", "register_candidate", _dump(call.body))


def candidate_token(call: Call):
    principal = call.rpc.call("identity", "authenticate_candidate", _dump(call.body))
    return call.tokens.issue(principal["subject"], principal["role"])


def staff_token(call: Call):
    principal = call.rpc.call("identity", "authenticate_staff", _dump(call.body))
    return call.tokens.issue(principal["subject"], principal["role"])


def my_profile(call: Call):
    return call.rpc.call("identity", "get_candidate", call.principal.subject)


def confirm_my_identity(call: Call):
    return call.rpc.call("identity", "confirm_identity", call.principal.subject, _dump(call.body))


def my_results(call: Call):
    return call.rpc.call("scoring", "results_for_candidate", call.principal.subject)


def my_certificates(call: Call):
    return call.rpc.call("certificates", "certificates_for_candidate", call.principal.subject)


def my_payment_orders(call: Call):
    return call.rpc.call("payments", "orders_for_payer", "candidate", call.principal.subject)


def record_results(call: Call):
    return call.rpc.call("scoring", "record_results", _dump(call.body))


def publish_results(call: Call):
    return call.rpc.call("scoring", "publish_results", _dump(call.body))


def sandbox_payment_callback(call: Call):
    from credence_common.errors import BadRequest

    try:
        text = call.raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("malformed_body", "The callback body must be UTF-8 JSON.") from None
    return call.rpc.call("payments", "handle_sandbox_callback", text, call.headers.get("X-Credence-Signature"))


def public_certificate_check(call: Call):
    return call.rpc.call("verification", "public_check", _dump(call.body))


ANY_SIGNED_IN = ("candidate", "institution", "staff")

ROUTES: tuple[Route, ...] = (
    Route("register_candidate", "POST", "/api/v1/candidates", "Pre-register a candidate under their real name",
          ("public",), register_candidate, RegisterCandidate, CandidateView, 201, tag="candidates"),
    Route("candidate_token", "POST", "/api/v1/auth/candidate-token", "Sign in as a candidate",
          ("public",), candidate_token, CandidateCredentials, TokenResponse, rate_limited=True, tag="auth"),
    Route("staff_token", "POST", "/api/v1/auth/staff-token", "Sign in as staff",
          ("public",), staff_token, StaffCredentials, TokenResponse, rate_limited=True, tag="auth"),
    Route("my_profile", "GET", "/api/v1/me", "The signed-in candidate's registration (masked)",
          ("candidate",), my_profile, None, CandidateView, tag="candidates"),
    Route("confirm_my_identity", "POST", "/api/v1/me/identity-confirmation",
          "Confirm identity and receive the admission ticket number",
          ("candidate",), confirm_my_identity, ConfirmIdentity, CandidateView, tag="candidates"),
    Route("my_results", "GET", "/api/v1/me/results", "The candidate's exam results (scores hidden until release)",
          ("candidate",), my_results, None, ResultList, tag="scoring"),
    Route("my_certificates", "GET", "/api/v1/me/certificates", "The candidate's certificates",
          ("candidate",), my_certificates, None, CertificateList, tag="certificates"),
    Route("my_payment_orders", "GET", "/api/v1/me/payment-orders", "Payment orders the candidate has to pay",
          ("candidate",), my_payment_orders, None, PaymentOrderList, tag="payments"),
    Route("record_results", "POST", "/api/v1/exam-results", "Record a batch of exam results (all or none)",
          ("staff",), record_results, RecordResults, RecordResultsOutcome, tag="scoring"),
    Route("publish_results", "POST", "/api/v1/exam-results/publication",
          "Release a sitting's results to candidates", ("staff",), publish_results, PublishResults,
          PublishResultsOutcome, tag="scoring"),
    Route("sandbox_payment_callback", "POST", "/api/v1/payments/callbacks/sandbox",
          "Payment provider callback (HMAC-SHA256 signature in X-Credence-Signature)", ("public",),
          sandbox_payment_callback, None, CallbackAcknowledgement, raw_body=True, tag="payments",
          documented_body=SandboxCallback),
    Route("public_certificate_check", "POST", "/api/v1/certificate-checks",
          "Check a certificate by holder name and certificate number", ("public",) + ANY_SIGNED_IN,
          public_certificate_check, PublicCheck, PublicCheckResult, rate_limited=True, tag="verification"),
)
