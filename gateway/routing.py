"""What a route is (``Route``), what its handler gets (``Call``) and the handler of most routes, a declared
forward to one service (``Rpc`` with its argument sources ``ACTOR``, ``Param``, ``BODY``...): the vocabulary of the
route tables in gateway/routes/, one per service."""

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
    actor_signer: Any = None  # credence_common.security.actor_tokens.ActorSigner

    @cached_property
    def actor(self) -> str:
        """Who asks, passed to services that check access themselves: signed, because a service believes
        only what the gateway vouches for (credence_common/security/actor_tokens.py); once per request, however many
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


@dataclass(frozen=True, kw_only=True)
class Route:
    """One endpoint, a row of a table in gateway/routes/: written with keywords only (``name=``, ``path=``,
    ``handler=``...), so that each value says what it is and the row is where a grep for its name or path lands.
    gateway/service.py and gateway/asgi.py mount each row under its name; the OpenAPI document and docs/access.md
    are generated from the rows."""

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
    # a staff caller must hold one of these staff roles (credence_common/contracts/staff_roles.py), else 403
    # role_required;
    # the service checks the same again. Every route that admits staff names them (tests/unit/test_staff_roles.py)
    staff_roles: tuple[str, ...] = ()
    # OpenAPI links (gateway/openapi.py puts them on the success answer): what this answer lets a client call next,
    # as (target route name, target path parameter, JSON pointer into this answer's body), e.g.
    # ("payment_order", "order_number", "/order_number") or ("my_certificate", "certificate_id",
    # "/certificates/0/certificate_id"); schemathesis' stateful phase follows them (tests/e2e/test_schemathesis.py)
    # and tests/unit/test_openapi.py checks each names an operation, its parameter and a field of the answer
    links: tuple[tuple[str, str, str], ...] = ()


def dump(model: BaseModel | None) -> dict | None:
    return model.model_dump(mode="json") if model is not None else None


# --- the declared forward: a handler that only asks one service ---------------------------------------------------

class Source:
    """Where one argument of a forwarded call comes from: ``source(call)`` is its value (see ``Rpc``)."""

    def __call__(self, call: Call) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _CallPart(Source):
    label: str
    read: Callable[[Call], Any] = field(compare=False)

    def __call__(self, call: Call) -> Any:
        return self.read(call)

    def __repr__(self) -> str:
        return self.label


ACTOR = _CallPart("ACTOR", lambda call: call.actor)  # who asks, signed (Call.actor)
SUBJECT = _CallPart("SUBJECT", lambda call: call.principal.subject)  # the signed-in account's own id
INSTITUTION = _CallPart("INSTITUTION", lambda call: call.principal.institution_id or "")  # the token's institution
BODY = _CallPart("BODY", lambda call: dump(call.body))  # the validated request body (Route.request_model), as JSON
CLIENT = _CallPart("CLIENT", lambda call: call.client_address)  # the client's address


@dataclass(frozen=True)
class Param(Source):
    """A path parameter: ``Param("batch_id")`` of ``/api/v1/result-imports/<batch_id>``."""

    name: str

    def __call__(self, call: Call) -> Any:
        return call.params[self.name]

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


@dataclass(frozen=True)
class Query(Source):
    """A query parameter, ``default`` when it is absent or empty: ``Query("status")`` of ``?status=open``."""

    name: str
    default: str | None = None

    def __call__(self, call: Call) -> Any:
        return call.query.get(self.name) or self.default

    def __repr__(self) -> str:
        return f"Query({self.name!r})" if self.default is None else f"Query({self.name!r}, {self.default!r})"


YES = ("1", "true", "yes")


@dataclass(frozen=True)
class Flag(Source):
    """A yes-or-no query parameter: True for ``?name=1|true|yes``, False otherwise (absent too); ``negated``: the
    other way round."""

    name: str
    negated: bool = False

    def __call__(self, call: Call) -> bool:
        return (call.query.get(self.name) in YES) != self.negated

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, negated=True)" if self.negated else f"Flag({self.name!r})"


@dataclass(frozen=True)
class Header(Source):
    """A request header, whatever its case; None when absent."""

    name: str

    def __call__(self, call: Call) -> Any:
        wanted = self.name.lower()
        return next((value for key, value in call.headers.items() if key.lower() == wanted), None)

    def __repr__(self) -> str:
        return f"Header({self.name!r})"


@dataclass(frozen=True, init=False, repr=False)
class Rpc:
    """The handler of a route that only forwards: ``Rpc("scoring", "import_report", ACTOR, Param("batch_id"))``
    answers what ``call.rpc.call("scoring", "import_report", call.actor, call.params["batch_id"])`` answers. Each
    argument is a ``Source`` read from the call, in order, or a plain value passed as it is. A route that does more
    (encodes, renders, batches, issues tokens) keeps a hand-written handler beside its table."""

    service: str
    method: str
    args: tuple[Any, ...]

    def __init__(self, service: str, method: str, *args: Any) -> None:
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "args", args)

    def __call__(self, call: Call) -> Any:
        return call.rpc.call(self.service, self.method,
                             *(arg(call) if isinstance(arg, Source) else arg for arg in self.args))

    def __repr__(self) -> str:
        return f"Rpc({', '.join(map(repr, (self.service, self.method, *self.args)))})"


ANY_SIGNED_IN = ("candidate", "institution", "staff")
NOT_REPLAYED = False  # replayable=NOT_REPLAYED: the answer is or holds a credential (see Route.replayable)

# The staff roles a route needs (Route.staff_roles; credence_common/contracts/staff_roles.py says what each is for).
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
