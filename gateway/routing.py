"""What a route is (``Route``) and what its handler gets (``Call``): the vocabulary of the route tables in
gateway/routes/, one per service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from gateway.auth import Principal


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
        return self.actor_signer.sign(self.principal.subject, self.principal.role,
                                      institution_id=self.principal.institution_id,
                                      staff_roles=self.principal.staff_roles if self.principal.role == "staff"
                                      else None)


@dataclass(frozen=True)
class Accepted:
    """A handler's answer for work accepted but not done yet: 202, with where to follow it (``Location``)."""

    body: Any
    location: str


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
    download_name: str | None = None  # a file to save (Content-Disposition: attachment), not to show
    accepted_status: bool = False  # may answer 202 (gateway.routing.Accepted) for work done in the background
    rate_limited: bool = False
    tag: str = "api"
    # unsafe routes honour Idempotency-Key; off where the answer must not be replayed (batched public checks) and
    # wherever it is or holds a credential (NOT_REPLAYED): a stored token would outlive a logout, a password
    # change or the code it was bought with, so a retry must be a fresh attempt (tests/security/test_credentials.py)
    replayable: bool = True
    # exists only with CREDENCE_ENV=development (the sandbox payer, the dev SMS inbox): elsewhere the gateway does
    # not mount it, so it is an unknown path (404 route_not_found) and absent from /openapi.json
    development_only: bool = False
    # headers of a success beside the defaults, e.g. a public document that caches ({"Cache-Control": ...}
    # replaces "no-store"); as (name, value) pairs so that a Route stays hashable
    response_headers: tuple[tuple[str, str], ...] = ()
    # a staff caller must hold one of these staff roles (credence_common/staff_roles.py), else 403 role_required;
    # the service checks the same again. Every route that admits staff names them (tests/unit/test_staff_roles.py)
    staff_roles: tuple[str, ...] = ()


def dump(model: BaseModel | None) -> dict | None:
    return model.model_dump(mode="json") if model is not None else None


ANY_SIGNED_IN = ("candidate", "institution", "staff")
NOT_REPLAYED = False  # replayable=NOT_REPLAYED: the answer is or holds a credential (see Route.replayable)

# The staff roles a route needs (Route.staff_roles; credence_common/staff_roles.py says what each is for).
RECORDER = ("recorder",)
EXPERT = ("expert",)
PUBLISHER = ("publisher",)
REGISTRAR = ("registrar",)
FINANCE = ("finance",)
SUPPORT = ("support",)
ADMIN = ("admin",)
HISTORY = ("recorder", "expert", "publisher", "support")  # a result's history: every duty that handles results
CERT_READ = ("registrar", "support")  # finding and reading certificates and applications
PAYMENT_READ = ("finance", "support")  # reading an order
