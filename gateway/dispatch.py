"""What the gateway does with a request, whichever HTTP server carries it: nameko ``@http`` (gateway/service.py)
or uvicorn + Starlette (gateway/asgi.py). Both bindings call these functions, so every rule (who may call a
route, the limits, the Idempotency-Key headers, the request models, the error answers, the catch-all's 404 and
405, the pages, the security headers, the access log line) is written once.

A binding turns its request into an ``Incoming``, reads the body itself (its server decides how a slow body is
cut off) and sends back the ``Answer``: a status, headers and a text or bytes body.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from nameko.exceptions import RemoteError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule

from credence_common.contracts.asyncapi import build_asyncapi
from credence_common.contracts.errors import (
    BadRequest,
    CredenceError,
    Forbidden,
    RateLimited,
    Unauthorized,
    refusal_from_wire,
)
from credence_common.contracts.validation import parse
from credence_common.observability import logs
from credence_common.persistence import idempotency
from credence_common.security.actor_tokens import ActorSigner
from credence_common.security.actors import require_staff_role
from gateway import logged_paths, web
from gateway.api import Call, Route, mounted_routes
from gateway.auth import Principal, TokenService
from gateway.openapi import build_openapi
from gateway.ratelimit import TokenBucketLimiter
from gateway.routing import Accepted
from gateway.statuses import http_status

log = logging.getLogger("gateway.service")  # the name the nameko gateway has always logged under
access_log = logging.getLogger("gateway.access")

MAX_BODY_BYTES = 2 * 1024 * 1024
VERIFY_FORM_MAX_BYTES = 4096
# no-referrer everywhere: a page's URL may hold a report code (/r/<report_code>), which a followed link or a
# loaded resource would otherwise carry to another site in its Referer
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                           "frame-ancestors 'none'"}
SERVICES = ("identity", "scoring", "certificates", "payments", "verification")
QUIET_ROUTES = frozenset({"/health", "/ready"})

# the gateway's own endpoints beside the API routes: (name, method, rule)
OPERATIONS = (("health", "GET", "/health"), ("ready", "GET", "/ready"), ("openapi", "GET", "/openapi.json"),
              ("asyncapi", "GET", "/asyncapi.json"), ("verify_page", "GET", "/verify"),
              ("verify_submit", "POST", "/verify"), ("report_page", "GET", "/r/<report_code>"))
# whatever no route takes: answered in JSON (404 or 405)
CATCH_ALL = ("/", "/<path:rest>")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: str | bytes


@dataclass
class Incoming:
    """A request as every binding sees it; ``headers`` looks names up case-insensitively (werkzeug's and
    Starlette's header objects both do)."""

    method: str
    path: str
    headers: Mapping[str, str]
    remote_addr: str
    query: dict = field(default_factory=dict)
    content_length: int | None = None


class Gateway:
    """What every request shares, built from the gateway's config (gateway/config.yml): token service, actor
    signer, rate limiter, the OpenAPI and AsyncAPI documents, the map of the routes this environment mounts."""

    def __init__(self, config: Mapping, environment: str):
        self.tokens = TokenService(config["JWT_SECRET"], int(config.get("JWT_LIFETIME_SECONDS", 900)))
        self.idempotency_key = idempotency.gateway_key(config["JWT_SECRET"])  # seals stored answers
        self.actor_signer = ActorSigner.from_spec(config["ACTOR_SIGNING_KEY"],
                                                  int(config.get("ACTOR_TOKEN_LIFETIME_SECONDS", 90)))
        self.limiter = TokenBucketLimiter(int(config.get("PUBLIC_RATE_LIMIT_PER_MINUTE", 600)))
        self._limiter_lock = threading.Lock()
        self.rpc_timeout = float(config.get("RPC_TIMEOUT_SECONDS", 10))
        self.amqp_uri = config["AMQP_URI"]
        self.check_batch_max = int(config.get("PUBLIC_CHECK_BATCH_MAX", 64))
        self.check_batches_in_flight = int(config.get("PUBLIC_CHECK_BATCHES_IN_FLIGHT", 1))
        self.results_batch_max = int(config.get("RESULT_READ_BATCH_MAX", 64))
        self.results_batches_in_flight = int(config.get("RESULT_READ_BATCHES_IN_FLIGHT", 2))
        # what this environment mounts (development-only routes elsewhere are unknown paths): the catch-all's 405
        # must not reveal the others, and neither may the OpenAPI document
        self.routes = mounted_routes(environment)
        self.openapi_json = json.dumps(build_openapi(routes=self.routes))
        # the event channels (the same in every environment), from the event contract
        self.asyncapi_json = json.dumps(build_asyncapi(), ensure_ascii=False)
        rules = [(route.method, route.path) for route in self.routes] + [(m, r) for _n, m, r in OPERATIONS]
        # every route the gateway answers, to tell a wrong method (405) from an unknown path (404)
        self.route_map = Map([Rule(rule, methods=[method], endpoint=rule) for method, rule in rules])
        self.path_redactor = logged_paths.PathRedactor([rule for _method, rule in rules] + list(CATCH_ALL),
                                                       catch_all=CATCH_ALL)

    def limit(self, bucket: str, what: str) -> None:
        # the asgi binding counts on its event loop and, for the two pages, in its handler threads: one bucket's
        # read-and-update must not interleave (under eventlet this lock is green and never contended)
        with self._limiter_lock:
            allowed = self.limiter.allow(bucket)
            wait = 0 if allowed else self.limiter.retry_after(bucket)
        if not allowed:
            raise RateLimited.after(wait, "rate_limited", f"{what}; try again in {wait} s.")


# --- answers --------------------------------------------------------------------------------------------

def json_answer(status: int, payload, headers: dict | None = None) -> Answer:
    return Answer(status, {**JSON_HEADERS, **(headers or {})}, json.dumps(payload, ensure_ascii=False))


def refusal_headers(error: CredenceError) -> dict:
    """A 429 says when to come back (RFC 9110 Retry-After, in seconds), whoever refused: the gateway's limiter
    or a service (a login lockout, the SMS code limits, the per-number check limit)."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_seconds)}
    return {}


def error_answer(error: CredenceError) -> Answer:
    return json_answer(http_status(error), error.to_body(), refusal_headers(error))


def html_answer(status: int, page: str, error: CredenceError | None = None) -> Answer:
    return Answer(status, {**HTML_HEADERS, **(refusal_headers(error) if error else {})}, page)


def answer_for_failure(route_name: str, failure: Exception) -> Answer:
    """A refusal is the caller's to act on; a service's crash is a 502; anything else a 500, never a traceback."""
    if isinstance(failure, CredenceError):
        return error_answer(failure)
    if isinstance(failure, RemoteError):
        log.error("%s: a service failed: %s", route_name, failure.exc_type)
        return json_answer(502, {"error": {"code": "upstream_error",
                                           "message": "A service failed to answer; try again."}})
    log.error("%s: unexpected failure", route_name, exc_info=failure)
    return json_answer(500, {"error": {"code": "internal_error", "message": "Something went wrong."}})


def results_batch(signer, items: list) -> tuple[list, str]:
    """``results_for_candidates``' arguments for a batch of ``(principal, candidate_id)``: the reads, and one
    token vouching for their actors in order (``ActorSigner.sign_batch``), instead of a signature per read."""
    return ([{"candidate_id": candidate_id} for _principal, candidate_id in items],
            signer.sign_batch([(principal.subject, principal.role) for principal, _candidate_id in items]))


def batched_outcome(outcome: dict):
    """One caller's share of a batched answer (``public_checks``, ``results_for_candidates``)."""
    if "refusal" in outcome:
        raise refusal_from_wire(outcome["refusal"])
    return outcome["answer"]


# --- the API routes -------------------------------------------------------------------------------------

def admit(gateway: Gateway, route: Route, request: Incoming) -> Principal:
    """Who asks, if they may call ``route`` and are within its rate limit; before any body is read."""
    principal = gateway.tokens.principal_from_header(request.headers.get("Authorization"))
    if "public" not in route.roles and principal.role not in route.roles:
        if principal.is_public:
            raise Unauthorized("authentication_required", "Sign in and send 'Authorization: Bearer <token>'.")
        raise Forbidden("forbidden", f"A {principal.role} may not do this.")
    if principal.role == "staff" and route.staff_roles:
        # the service refuses it too (credence_common/security/actors.py require_staff); refused here before any body
        # is read
        require_staff_role(principal, route.staff_roles)
    if route.rate_limited:
        gateway.limit(f"{route.name}:{request.remote_addr}", "Too many requests")
    return principal


def read_before_admission(route: Route, request: Incoming) -> bool:
    """A body of at most 2 MiB (or the route's limit, if lower) with a Content-Length is read before anything
    else, within the body deadline: a refusal then answers a whole request, and a slow body is cut off as a
    slow body (408) whoever sends it. A larger or unannounced one is read only after ``admit``: a caller who
    has not signed in cannot make the gateway hold more than 2 MiB."""
    return request.content_length is not None and request.content_length <= buffered_body_limit(route.max_body_bytes)


def buffered_body_limit(route_limit: int) -> int:
    return min(route_limit, MAX_BODY_BYTES)


def too_large(limit: int) -> BadRequest:
    return BadRequest("payload_too_large", f"The body may be at most {limit} bytes.")


def refuse_declared_size(request: Incoming, limit: int) -> None:
    if (request.content_length or 0) > limit:
        raise too_large(limit)


def read_body(request: Incoming, read: Callable[[int], bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, at most ``limit`` bytes: ``read(n)`` reads up to n bytes, so that even a body without a
    Content-Length stays bounded."""
    refuse_declared_size(request, limit)
    body = read(limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    return body or b""


def decode_json(raw: bytes):
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("malformed_json", "The request body is not valid JSON.") from None


def prepare_call(gateway: Gateway, route: Route, request: Incoming, principal: Principal, raw: bytes,
                 params: dict, rpc: Any, context: dict) -> Call:
    """The handler's ``Call``. An unsafe request's Idempotency-Key goes into ``context``, the data every RPC of
    this request carries in its headers: the service keeps the first answer with its effect."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and route.method != "GET" and route.replayable:
        context.update(idempotency.request_headers(
            key, f"{principal.role}:{principal.subject}", route.name, route.method, request.path, raw,
            gateway.idempotency_key))
    body = parse(route.request_model, decode_json(raw)) if route.request_model is not None else None
    return Call(principal=principal, body=body, params=params, rpc=rpc, tokens=gateway.tokens, raw_body=raw,
                headers=dict(request.headers), client_address=request.remote_addr or "", query=dict(request.query),
                actor_signer=gateway.actor_signer)


def success_answer(route: Route, answer) -> Answer:
    if isinstance(answer, Accepted):
        return json_answer(202, answer.body, {"Location": answer.location})
    if route.content_type != "application/json":
        headers = {"Content-Type": route.content_type, "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
        if route.download_name:
            headers["Content-Disposition"] = f'attachment; filename="{route.download_name}"'
        return Answer(route.success_status, {**headers, **dict(route.response_headers)}, answer)
    return json_answer(route.success_status, answer, dict(route.response_headers) or None)


def dispatch(gateway: Gateway, route: Route, request: Incoming, params: dict, read: Callable[[int], bytes],
             rpc: Any, context: dict) -> Answer:
    """A route's whole request, synchronously (the handlers in gateway/routes/ are synchronous)."""
    try:
        principal = admit(gateway, route, request)
        raw = read_body(request, read, route.max_body_bytes)
        call = prepare_call(gateway, route, request, principal, raw, params, rpc, context)
        return success_answer(route, route.handler(call))
    except Exception as failure:
        return answer_for_failure(route.name, failure)


# --- the catch-all and the gateway's own endpoints ------------------------------------------------------

def unknown_route(gateway: Gateway, request: Incoming) -> Answer:
    """Whatever no route takes, in JSON like every other error (werkzeug would answer in HTML)."""
    try:
        gateway.route_map.bind("gateway").match(request.path, method=request.method)
    except MethodNotAllowed as wrong:
        return json_answer(405, {"error": {"code": "method_not_allowed",
                                           "message": f"{request.method} is not allowed here."}},
                           {"Allow": ", ".join(sorted(wrong.valid_methods or ()))})
    except (RouteNotFound, HTTPException):  # also a redirect werkzeug would suggest (a doubled or trailing slash)
        pass
    return json_answer(404, {"error": {"code": "route_not_found", "message": "No such endpoint."}})


def health() -> Answer:
    return json_answer(200, {"status": "ok"})


def broker_problem(amqp_uri: str) -> Exception | None:
    """A fresh connection to the broker, as readiness means it (blocking: an asyncio binding runs it in a
    thread)."""
    from kombu import Connection

    try:
        with Connection(amqp_uri, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        return error
    return None


def broker_unreachable(error: Exception) -> Answer:
    return json_answer(503, {"status": "not_ready", "broker": f"unreachable: {type(error).__name__}"})


def ready(broker_ms: float, services: dict) -> Answer:
    """Ready when the broker answers. Each service's health is reported too, but a service being down does not
    make the gateway unready: it can still serve everything else."""
    return json_answer(200, {"status": "ready", "broker": "ok", "broker_check_ms": round(broker_ms, 1),
                             "services": services})


def openapi(gateway: Gateway) -> Answer:
    return Answer(200, dict(JSON_HEADERS), gateway.openapi_json)


def asyncapi(gateway: Gateway) -> Answer:
    return Answer(200, dict(JSON_HEADERS), gateway.asyncapi_json)


def verify_page() -> Answer:
    return html_answer(200, web.render_page())


def verify_form_too_large(request: Incoming) -> Answer | None:
    if (request.content_length or 0) > VERIFY_FORM_MAX_BYTES:
        page = web.render_page(result_html=web.render_refusal("The form is too large."))
        return Answer(400, dict(HTML_HEADERS), page)
    return None


def verify_submit(gateway: Gateway, request: Incoming, raw: bytes, public_check: Callable[[dict, str], dict]) -> Answer:
    """The public check page's form; ``public_check(request, client)`` is the batched check. Who is checking
    and why are optional: left empty, they are not sent; too long, verification refuses the check (422) and
    logs nothing."""
    form = {key: values[0] for key, values in parse_qs(raw[:VERIFY_FORM_MAX_BYTES].decode("utf-8", "replace")).items()}
    holder_name = form.get("holder_name", "")
    certificate_number = form.get("certificate_number", "")
    stated = {name: form[name] for name in ("organisation", "purpose") if form.get(name, "").strip()}
    status, refusal = 200, None
    try:
        gateway.limit(f"verify_page:{request.remote_addr}", "Too many checks")
        answer = public_check({"holder_name": holder_name, "certificate_number": certificate_number, **stated},
                              request.remote_addr or "")
        result_html = web.render_valid(answer["certificate"], answer["result"])
    except CredenceError as error:
        status, refusal = http_status(error), error
        result_html = web.render_refusal(error.message)
    except Exception:
        log.exception("verify page failed")
        status = 503
        result_html = web.render_refusal("The check could not be completed; please try again.")
    return html_answer(status, web.render_page(holder_name, certificate_number, result_html,
                                               form.get("organisation", ""), form.get("purpose", "")), refusal)


# what a report's QR code adds to its page's URL (``QR_MARKER`` in services/verification/domain/reports.py): not
# personal data
QR_MARKER = ("via", "qr")


def report_page(gateway: Gateway, request: Incoming, report_code: str, call: Callable[..., Any]) -> Answer:
    """A shared report by its code (the QR code's link, ``?via=qr``, or the code's URL typed in); ``call(service,
    method, *args)`` is the RPC. Verification records the opening for the holder, with its channel."""
    channel = "report_qr" if request.query.get(QR_MARKER[0]) == QR_MARKER[1] else "report_code"
    try:
        gateway.limit(f"report_page:{request.remote_addr}", "Too many requests")
        return html_answer(200, web.render_report(call("verification", "report_answer", report_code,
                                                       request.remote_addr or "", channel)))
    except CredenceError as error:
        return html_answer(http_status(error), web.render_report(None, error.message), error)
    except Exception:
        log.exception("report page failed")
        return html_answer(503, web.render_report(None, "The report could not be read; please try again."))


# --- correlation and the access log ---------------------------------------------------------------------

def correlation_id(headers: Mapping[str, str]) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token, else a new one (credence_common/observability/logs.py)."""
    return logs.sane(headers.get(logs.HEADER)) or logs.new_correlation_id()


def log_access(method: str, rule: str, status: int, started: float, correlation: str) -> None:
    """The access log names the route's rule, not the path: a path may hold a report code. Probes come every
    few seconds and would drown the requests people make, so they log at DEBUG."""
    level = logging.DEBUG if rule in QUIET_ROUTES else logging.INFO
    if not access_log.isEnabledFor(level):  # the busiest routes pay nothing for a line nobody keeps
        return
    with logs.correlation_scope(correlation):
        access_log.log(level, "%s %s %d %.1fms", method, rule, status, (time.perf_counter() - started) * 1000)
