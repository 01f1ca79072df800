"""The HTTP front door, bound to nameko ``@http``. It authenticates, validates, forwards to a service
over RabbitMQ RPC and maps typed errors to HTTP statuses; it holds no business rule.

Every API entrypoint is generated from ``gateway.api.ROUTES``; what each request goes through is in
``gateway/dispatch.py``, which the asyncio binding (``gateway/asgi.py``, uvicorn + Starlette) calls too.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from credence_common.bus.remote import call_with_deadline
from credence_common.bus.rpc_queue import RpcProxy
from credence_common.config import environment, is_development
from credence_common.observability import logs
from credence_common.observability.metrics import Metrics
from gateway import dispatch, http_server, logged_paths
from gateway.api import ROUTES, Route
from gateway.batching import Batcher

log = logging.getLogger(__name__)

# kept here for what imports them from the nameko binding; the rules live in gateway/dispatch.py
MAX_BODY_BYTES = dispatch.MAX_BODY_BYTES
VERIFY_FORM_MAX_BYTES = dispatch.VERIFY_FORM_MAX_BYTES
JSON_HEADERS = dispatch.JSON_HEADERS
HTML_HEADERS = dispatch.HTML_HEADERS
SERVICES = dispatch.SERVICES


def response(answer: dispatch.Answer):
    """nameko's ``@http`` takes (status, headers, text); a bytes body (a PDF) needs a werkzeug Response."""
    if isinstance(answer.body, bytes):
        return Response(answer.body, status=answer.status, headers=answer.headers)
    return answer.status, answer.headers, answer.body


def incoming(request) -> dispatch.Incoming:
    return dispatch.Incoming(method=request.method, path=request.path, headers=request.headers,
                             remote_addr=request.remote_addr or "", query=dict(request.args),
                             content_length=request.content_length)


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

    def candidate_results(self, principal, candidate_id: str) -> dict:
        """A candidate's results, riding with the other reads of the moment in one ``results_for_candidates``
        round trip (release day: thousands of candidates reading at once), whose actors are signed once for
        the whole batch (``dispatch.results_batch``)."""
        signer = self._gateway.state.gateway.actor_signer
        return dispatch.batched_outcome(self._gateway.state.results_batcher.submit(
            (principal, candidate_id),
            lambda items: self.call("scoring", "results_for_candidates", *dispatch.results_batch(signer, items))))

    def _batched(self, batcher, item: dict, service: str, method: str) -> dict:
        return dispatch.batched_outcome(batcher.submit(item, lambda items: self.call(service, method, items)))


class GatewayState(DependencyProvider):
    """What every request shares (``dispatch.Gateway``: token service, rate limiter, the OpenAPI document, the
    route map), plus the batchers of this binding."""

    def setup(self):
        config = self.container.config
        self.gateway = dispatch.Gateway(config, environment())
        development = is_development()
        routes = [entrypoint for entrypoint in self.container.entrypoints
                  if isinstance(entrypoint, HttpRequestHandler)
                  and (development or not isinstance(entrypoint, DevelopmentOnlyHttp))]
        # eventlet's own log lines (nameko hands it this logger) would show paths, which may hold secrets
        logged_paths.install(logging.getLogger("nameko.web.server"), logged_paths.PathRedactor(
            [e.url for e in routes], catch_all=[e.url for e in routes if e.method == ANY_METHOD]))
        self.check_batcher = Batcher(max_batch=self.gateway.check_batch_max,
                                     max_in_flight=self.gateway.check_batches_in_flight)
        self.results_batcher = Batcher(max_batch=self.gateway.results_batch_max,
                                       max_in_flight=self.gateway.results_batches_in_flight)

    def get_dependency(self, worker_ctx):
        return self


class TracedHttp(HttpRequestHandler):
    """nameko's ``@http``, plus the correlation id (credence_common/observability/logs.py): the caller's
    ``X-Request-Id`` when
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
        correlation_id = dispatch.correlation_id(request.headers)
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
        dispatch.log_access(request.method, self.url, response.status_code, started, correlation_id)
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

    # --- the API, generated from ROUTES (bound below the class; the rows: gateway/routes/*.py) --------

    def _dispatch(self, route: Route, request, params: dict):
        return response(dispatch.dispatch(
            self.state.gateway, route, incoming(request), params, request.stream.read,
            ServiceCalls(self, self.state.gateway.rpc_timeout), self.call_context.data))

    @http(ANY_METHOD, "/")
    @http(ANY_METHOD, "/<path:rest>")
    def unknown_route(self, request, rest=""):
        return response(dispatch.unknown_route(self.state.gateway, incoming(request)))

    # --- operations ---------------------------------------------------------------------------------

    @http("GET", "/health")
    def health(self, request):
        return response(dispatch.health())

    @http("GET", "/ready")
    def ready(self, request):
        started = time.perf_counter()
        problem = dispatch.broker_problem(self.state.gateway.amqp_uri)
        if problem is not None:
            return response(dispatch.broker_unreachable(problem))
        broker_ms = (time.perf_counter() - started) * 1000
        calls = ServiceCalls(self, timeout=2.0)

        def probe(service):
            try:
                return service, calls.call(service, "health")["status"]
            except Exception:
                return service, "unavailable"

        return response(dispatch.ready(broker_ms, dict(eventlet.GreenPool(len(SERVICES)).imap(probe, SERVICES))))

    @http("GET", "/openapi.json")
    def openapi(self, request):
        return response(dispatch.openapi(self.state.gateway))

    @http("GET", "/asyncapi.json")
    def asyncapi(self, request):
        return response(dispatch.asyncapi(self.state.gateway))

    # --- the public verification page ---------------------------------------------------------------

    @http("GET", "/verify")
    def verify_page(self, request):
        return response(dispatch.verify_page())

    @http("POST", "/verify")
    def verify_submit(self, request):
        request_in = incoming(request)
        too_large = dispatch.verify_form_too_large(request_in)
        if too_large is not None:
            return response(too_large)
        calls = ServiceCalls(self, self.state.gateway.rpc_timeout)
        return response(dispatch.verify_submit(self.state.gateway, request_in,
                                               request.stream.read(VERIFY_FORM_MAX_BYTES), calls.public_check))


def _report_page(self, request, report_code):
    return response(dispatch.report_page(self.state.gateway, incoming(request), report_code,
                                         ServiceCalls(self, self.state.gateway.rpc_timeout).call))


GatewayService.report_page = http("GET", "/r/<report_code>")(_report_page)


def _bind(route: Route):
    def entrypoint(self, request, **params):
        return self._dispatch(route, request, params)

    entrypoint.__name__ = route.name
    entrypoint.__doc__ = route.summary
    return (development_only_http if route.development_only else http)(route.method, route.path)(entrypoint)


# One entrypoint per route, named after it. The routes are rows of the tables in gateway/routes/{identity,scoring,
# certificates,payments,verification}.py (assembled in gateway/api.py): grep a route's name or path there to find its
# row, which holds its roles, models and handler (mostly a declared forward, gateway/routing.py ``Rpc``).
for _route in ROUTES:
    setattr(GatewayService, _route.name, _bind(_route))

# the most of a body each entrypoint has read before its worker is taken (one that reads none: 0). A larger body
# (a result file, up to 16 MiB, staff only) is read by the worker after the sign-in check, still within the body
# deadline: a client that has not signed in cannot make the gateway hold more than 2 MiB per connection
BODY_LIMITS = ({route.name: dispatch.buffered_body_limit(route.max_body_bytes) for route in ROUTES}
               | {"verify_submit": VERIFY_FORM_MAX_BYTES})
