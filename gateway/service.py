"""The HTTP front door, bound to nameko ``@http``. It authenticates, validates, forwards to a service
over RabbitMQ RPC and maps typed errors to HTTP statuses; it holds no business rule.

Every API entrypoint is generated from ``gateway.api.ROUTES``; replacing nameko's web server means
rewriting only this module.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from urllib.parse import parse_qs

import eventlet
from eventlet.event import Event
from kombu import Connection
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from credence_common import idempotency, logs
from credence_common.actor_tokens import ActorSigner
from credence_common.config import environment, is_development
from credence_common.errors import (
    BadRequest,
    CredenceError,
    Forbidden,
    RateLimited,
    Unauthorized,
    refusal_from_wire,
)
from credence_common.metrics import Metrics
from credence_common.remote import call_with_deadline
from credence_common.validation import parse
from gateway import http_server, logged_paths, web
from gateway.api import ROUTES, Call, Route, mounted_routes
from gateway.auth import TokenService
from gateway.batching import Batcher
from gateway.openapi import build_openapi
from gateway.ratelimit import TokenBucketLimiter

log = logging.getLogger(__name__)

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


def json_response(status: int, payload, headers: dict | None = None) -> tuple:
    return status, {**JSON_HEADERS, **(headers or {})}, json.dumps(payload, ensure_ascii=False)


def refusal_headers(error: CredenceError) -> dict:
    """A 429 says when to come back (RFC 9110 Retry-After, in seconds), whoever refused: the gateway's limiter
    or a service (a login lockout, the SMS code limits, the per-number check limit)."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_seconds)}
    return {}


def error_response(error: CredenceError) -> tuple:
    return json_response(error.http_status, error.to_body(), refusal_headers(error))


def html_response(status: int, page: str, error: CredenceError | None = None) -> tuple:
    return status, {**HTML_HEADERS, **(refusal_headers(error) if error else {})}, page


class ServiceCalls:
    """RPC to the services with a deadline: nameko's service-to-service proxy would wait forever."""

    def __init__(self, gateway, timeout: float):
        self._gateway = gateway
        self._timeout = timeout

    def call(self, service: str, method: str, *args):
        return call_with_deadline(getattr(self._gateway, f"{service}_rpc"), service, method, *args,
                                  timeout=self._timeout)

    def public_check(self, request: dict, client: str) -> dict:
        """Rides with the other checks of the moment in one ``public_checks`` round trip."""
        return self._batched(self._gateway.state.check_batcher, {"request": request, "client": client},
                             "verification", "public_checks")

    def candidate_results(self, actor: str, candidate_id: str) -> dict:
        """A candidate's results, riding with the other reads of the moment in one ``results_for_candidates``
        round trip (release day: thousands of candidates reading at once)."""
        return self._batched(self._gateway.state.results_batcher, {"actor": actor, "candidate_id": candidate_id},
                             "scoring", "results_for_candidates")

    def _batched(self, batcher, item: dict, service: str, method: str) -> dict:
        outcome = batcher.submit(item, lambda items: self.call(service, method, items))
        if "refusal" in outcome:
            raise refusal_from_wire(outcome["refusal"])
        return outcome["answer"]


class GatewayState(DependencyProvider):
    """What every request shares: token service, rate limiter, the OpenAPI document, the route map."""

    def setup(self):
        config = self.container.config
        self.tokens = TokenService(config["JWT_SECRET"], int(config.get("JWT_LIFETIME_SECONDS", 900)))
        self.idempotency_key = idempotency.gateway_key(config["JWT_SECRET"])  # seals stored answers
        self.actor_signer = ActorSigner.from_spec(config["ACTOR_SIGNING_KEY"],
                                                  int(config.get("ACTOR_TOKEN_LIFETIME_SECONDS", 90)))
        self.limiter = TokenBucketLimiter(int(config.get("PUBLIC_RATE_LIMIT_PER_MINUTE", 600)))
        self.rpc_timeout = float(config.get("RPC_TIMEOUT_SECONDS", 10))
        self.amqp_uri = config["AMQP_URI"]
        # what this environment mounts (DevelopmentOnlyHttp): the catch-all's 405 must not reveal the others
        self.openapi_json = json.dumps(build_openapi(routes=mounted_routes(environment())))
        development = is_development()
        routes = [entrypoint for entrypoint in self.container.entrypoints
                  if isinstance(entrypoint, HttpRequestHandler)
                  and (development or not isinstance(entrypoint, DevelopmentOnlyHttp))]
        # every route the gateway answers, to tell a wrong method (405) from an unknown path (404)
        self.route_map = Map([Rule(e.url, methods=e.method.split(","), endpoint=e.method_name) for e in routes
                              if e.method != ANY_METHOD])
        # eventlet's own log lines (nameko hands it this logger) would show paths, which may hold secrets
        logged_paths.install(logging.getLogger("nameko.web.server"), logged_paths.PathRedactor(
            [e.url for e in routes], catch_all=[e.url for e in routes if e.method == ANY_METHOD]))
        self.check_batcher = Batcher(max_batch=int(config.get("PUBLIC_CHECK_BATCH_MAX", 64)),
                                     max_in_flight=int(config.get("PUBLIC_CHECK_BATCHES_IN_FLIGHT", 2)))
        self.results_batcher = Batcher(max_batch=int(config.get("RESULT_READ_BATCH_MAX", 64)),
                                       max_in_flight=int(config.get("RESULT_READ_BATCHES_IN_FLIGHT", 2)))

    def get_dependency(self, worker_ctx):
        return self


class TracedHttp(HttpRequestHandler):
    """nameko's ``@http``, plus the correlation id (credence_common/logs.py): the caller's ``X-Request-Id`` when
    it is a sane token, else a new one; the worker runs under it, every RPC carries it on, and the response
    answers it in ``X-Request-Id`` so that a client can quote it to the operators. The server has read
    deadlines, and the body is read before a worker is taken (gateway/http_server.py).

    ``ANY_METHOD`` ("*") as the method: the route takes every method (the catch-all that answers 404 and 405 in
    JSON, where werkzeug would answer in HTML)."""

    server = http_server.DeadlineWebServer()

    def get_url_rule(self):
        return Rule(self.url, methods=None) if self.method == ANY_METHOD else super().get_url_rule()

    def handle_request(self, request):
        request.shallow = False
        started = time.perf_counter()
        correlation_id = logs.sane(request.headers.get(logs.HEADER)) or logs.new_correlation_id()
        try:
            # a slow body must hold only its connection, not one of the workers
            http_server.buffer_body(request, BODY_LIMITS.get(self.method_name, 0))
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data={logs.CONTEXT_KEY: correlation_id},
                                        handle_result=partial(self.handle_result, event))
            response = self.response_from_result(event.wait())
        except http_server.BodyNotReceived as refusal:
            response = refusal.response
        except Exception as exc:
            response = self.response_from_exception(exc)
        response.headers[logs.HEADER] = correlation_id
        # The access log names the route's rule, not the path: a path may hold a report code.
        with logs.correlation_scope(correlation_id):
            # probes and scrapes come every few seconds and would drown the requests people make
            access_log.log(logging.DEBUG if self.url in QUIET_ROUTES else logging.INFO, "%s %s %d %.1fms",
                           request.method, self.url, response.status_code, (time.perf_counter() - started) * 1000)
        return response


ANY_METHOD = "*"


class DevelopmentOnlyHttp(TracedHttp):
    """A route that exists only with CREDENCE_ENV=development (``Route.development_only``): elsewhere it never
    registers with nameko's web server, so its path reaches the catch-all like any unknown path (404
    ``route_not_found``) and a caller cannot tell it was ever there."""

    mounted = False

    def setup(self):
        self.mounted = is_development()
        if self.mounted:
            super().setup()

    def stop(self):
        if self.mounted:  # the web server would fail to unregister a provider it never had
            super().stop()


http = TracedHttp.decorator
development_only_http = DevelopmentOnlyHttp.decorator
access_log = logging.getLogger("gateway.access")
QUIET_ROUTES = frozenset({"/health", "/ready"})


class CallContext(DependencyProvider):
    """The worker's context: what is set in its ``data`` travels as headers with every RPC it makes."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class GatewayService:
    name = "gateway"

    identity_rpc = RpcProxy("identity")
    scoring_rpc = RpcProxy("scoring")
    certificates_rpc = RpcProxy("certificates")
    payments_rpc = RpcProxy("payments")
    verification_rpc = RpcProxy("verification")
    state = GatewayState()
    metrics = Metrics()
    call_context = CallContext()
    correlation = logs.CorrelationContext()

    # --- the API, generated from ROUTES (bound below the class) ------------------------------------

    def _dispatch(self, route: Route, request, params: dict):
        try:
            principal = self.state.tokens.principal_from_header(request.headers.get("Authorization"))
            if "public" not in route.roles and principal.role not in route.roles:
                if principal.is_public:
                    raise Unauthorized("authentication_required", "Sign in and send 'Authorization: Bearer <token>'.")
                raise Forbidden("forbidden", f"A {principal.role} may not do this.")
            if route.rate_limited:
                self._limit(f"{route.name}:{request.remote_addr}", "Too many requests")
            raw = self._read_body(request, route.max_body_bytes)
            key = request.headers.get("Idempotency-Key")
            if key is not None and route.method != "GET" and route.replayable:
                # travels in the RPC's context headers; the service keeps the first answer with its effect
                self.call_context.data.update(idempotency.request_headers(
                    key, f"{principal.role}:{principal.subject}", route.name, route.method, request.path, raw,
                    self.state.idempotency_key))
            body = None
            if route.request_model is not None:
                body = parse(route.request_model, self._decode_json(raw))
            call = Call(principal=principal, body=body, params=params,
                        rpc=ServiceCalls(self, self.state.rpc_timeout), tokens=self.state.tokens,
                        raw_body=raw, headers=dict(request.headers), client_address=request.remote_addr or "",
                        query=dict(request.args), actor_signer=self.state.actor_signer)
            answer = route.handler(call)
            if route.content_type != "application/json":
                headers = {"Content-Type": route.content_type, "Cache-Control": "no-store",
                           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
                if isinstance(answer, bytes):  # nameko's @http takes only text payloads; a PDF is bytes
                    return Response(answer, status=route.success_status, headers=headers)
                return route.success_status, headers, answer
            return json_response(route.success_status, answer)
        except CredenceError as error:
            return error_response(error)
        except RemoteError as error:
            log.error("%s: a service failed: %s", route.name, error.exc_type)
            return json_response(502, {"error": {"code": "upstream_error",
                                                 "message": "A service failed to answer; try again."}})
        except Exception:
            log.exception("%s: unexpected failure", route.name)
            return json_response(500, {"error": {"code": "internal_error", "message": "Something went wrong."}})

    def _limit(self, bucket: str, what: str) -> None:
        if not self.state.limiter.allow(bucket):
            wait = self.state.limiter.retry_after(bucket)
            raise RateLimited.after(wait, "rate_limited", f"{what}; try again in {wait} s.")

    @staticmethod
    def _read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
        too_large = BadRequest("payload_too_large", f"The body may be at most {limit} bytes.")
        if (request.content_length or 0) > limit:
            raise too_large
        body = request.stream.read(limit + 1)  # bounded even without a Content-Length
        if len(body) > limit:
            raise too_large
        return body or b""

    @staticmethod
    def _decode_json(raw: bytes):
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest("malformed_json", "The request body is not valid JSON.") from None

    @http(ANY_METHOD, "/")
    @http(ANY_METHOD, "/<path:rest>")
    def unknown_route(self, request, rest=""):
        """Whatever no route takes, in JSON like every other error (werkzeug would answer in HTML)."""
        try:
            self.state.route_map.bind("gateway").match(request.path, method=request.method)
        except MethodNotAllowed as wrong:
            return json_response(405, {"error": {"code": "method_not_allowed",
                                                 "message": f"{request.method} is not allowed here."}},
                                 {"Allow": ", ".join(sorted(wrong.valid_methods or ()))})
        except RouteNotFound:
            pass
        return json_response(404, {"error": {"code": "route_not_found", "message": "No such endpoint."}})

    # --- operations ---------------------------------------------------------------------------------

    @http("GET", "/health")
    def health(self, request):
        return json_response(200, {"status": "ok"})

    @http("GET", "/ready")
    def ready(self, request):
        """Ready when the broker answers. Each service's health is reported too, but a service being
        down does not make the gateway unready: it can still serve everything else."""
        started = time.perf_counter()
        try:
            with Connection(self.state.amqp_uri, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:
            return json_response(503, {"status": "not_ready", "broker": f"unreachable: {type(exc).__name__}"})
        broker_ms = round((time.perf_counter() - started) * 1000, 1)
        calls = ServiceCalls(self, timeout=2.0)

        def probe(service):
            try:
                return service, calls.call(service, "health")["status"]
            except Exception:
                return service, "unavailable"

        services = dict(eventlet.GreenPool(len(SERVICES)).imap(probe, SERVICES))
        return json_response(200, {"status": "ready", "broker": "ok", "broker_check_ms": broker_ms,
                                   "services": services})

    @http("GET", "/openapi.json")
    def openapi(self, request):
        return 200, JSON_HEADERS, self.state.openapi_json

    # --- the public verification page ---------------------------------------------------------------

    @http("GET", "/verify")
    def verify_page(self, request):
        return html_response(200, web.render_page())

    @http("POST", "/verify")
    def verify_submit(self, request):
        if (request.content_length or 0) > VERIFY_FORM_MAX_BYTES:
            return 400, HTML_HEADERS, web.render_page(result_html=web.render_refusal("The form is too large."))
        raw = request.stream.read(VERIFY_FORM_MAX_BYTES).decode("utf-8", "replace")
        form = {key: values[0] for key, values in parse_qs(raw).items()}
        holder_name = form.get("holder_name", "")
        certificate_number = form.get("certificate_number", "")
        status, refusal = 200, None
        try:
            self._limit(f"verify_page:{request.remote_addr}", "Too many checks")
            answer = ServiceCalls(self, self.state.rpc_timeout).public_check(
                {"holder_name": holder_name, "certificate_number": certificate_number}, request.remote_addr or "")
            result_html = web.render_valid(answer["certificate"], answer["result"])
        except CredenceError as error:
            status, refusal = error.http_status, error
            result_html = web.render_refusal(error.message)
        except Exception:
            log.exception("verify page failed")
            status = 503
            result_html = web.render_refusal("The check could not be completed; please try again.")
        return html_response(status, web.render_page(holder_name, certificate_number, result_html), refusal)


def _report_page(self, request, report_code):
    try:
        self._limit(f"report_page:{request.remote_addr}", "Too many requests")
        answer = ServiceCalls(self, self.state.rpc_timeout).call("verification", "report_answer", report_code)
        return html_response(200, web.render_report(answer))
    except CredenceError as error:
        return html_response(error.http_status, web.render_report(None, error.message), error)
    except Exception:
        log.exception("report page failed")
        return html_response(503, web.render_report(None, "The report could not be read; please try again."))


GatewayService.report_page = http("GET", "/r/<report_code>")(_report_page)


def _bind(route: Route):
    def entrypoint(self, request, **params):
        return self._dispatch(route, request, params)

    entrypoint.__name__ = route.name
    entrypoint.__doc__ = route.summary
    return (development_only_http if route.development_only else http)(route.method, route.path)(entrypoint)


for _route in ROUTES:
    setattr(GatewayService, _route.name, _bind(_route))

# the most of a body each entrypoint has read before its worker is taken (one that reads none: 0). A larger body
# (a result file, up to 16 MiB, staff only) is read by the worker after the sign-in check, still within the body
# deadline: a client that has not signed in cannot make the gateway hold more than 2 MiB per connection
BODY_LIMITS = ({route.name: min(route.max_body_bytes, MAX_BODY_BYTES) for route in ROUTES}
               | {"verify_submit": VERIFY_FORM_MAX_BYTES})
