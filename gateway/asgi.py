"""The gateway on asyncio: Starlette on uvicorn (httptools, uvloop), speaking nameko's RPC to the services over
aio-pika (gateway/amqp_rpc.py). ``python -m gateway.asgi [gateway/config.yml]``; the default gateway: ``make run``
starts it unless ``GATEWAY_SERVER=nameko`` (deploy/processes.py). Same config file, same answers as the nameko binding
(gateway/service.py): both call gateway/dispatch.py for every rule.

Why: eventlet's WSGI server and a nameko worker per request cost about 1.5 ms before any work, and nameko's
RPC proxy more per call than the bus needs (docs/performance.md, issue #18).

How a request runs. The route table (gateway/api.py, one module per service in gateway/routes/) has synchronous
handlers, ``route.handler(call)`` calling ``call.rpc.call(...)``: they run in a thread pool (``max_workers``, as
nameko's worker pool) with a blocking facade onto the asyncio RPC client. The two hot routes, the public check and a
candidate's results, are awaited on the event loop instead (``NATIVE_HANDLERS``): no thread hop, and their batching
(gateway/batching.py ``AsyncBatcher``) happens on the loop. Everything before the handler (who asks, limits, body,
model) and after it (the answer, the error mapping) is dispatch.py's, on the loop.

Slow clients: what gateway/http_server.py does for the nameko binding, and what does it here.

- Request line and headers within ``GATEWAY_HEADER_DEADLINE_SECONDS``, a total deadline, 408 if part of a request
  had come: ``DeadlineProtocol``, a timer from the connection's start and from the end of each answer, cancelled
  when the headers are in; 408 or a silent close, as there.
- An idle kept-alive connection closed after the header deadline: the same timer, and uvicorn's
  ``timeout_keep_alive`` set to it.
- The body within ``GATEWAY_BODY_DEADLINE_SECONDS`` of the headers, else 408: ``read_body`` under
  ``asyncio.timeout``; 408 with ``Connection: close``.
- The body read before a worker is taken: the body is read on the event loop; a thread is taken only for the
  handler, after the body is in.
- At most ``GATEWAY_MAX_CONNECTIONS`` connections, more wait in the backlog: uvicorn's ``limit_concurrency``;
  beyond it a request is answered 503 (in JSON) at once instead of waiting; listen backlog 1024; the open-file
  limit raised as there.
- A malformed request line or headers: 400 in JSON (``DeadlineProtocol.send_400_response``).
- No path in any log line: uvicorn's access log is off; the access log names the rule (dispatch.log_access);
  uvicorn's error log goes through the same redaction as eventlet's (gateway/logged_paths.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

# gateway/http_server.py (its deadline settings are shared) imports eventlet, which is never started here:
# its deprecation notice would only mislead
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, request_response
from starlette.routing import Route as StarletteRoute
from uvicorn.protocols.http import httptools_impl

from credence_common.config import ConfigurationRefused, assert_safe_for_environment, environment, load_config
from credence_common.observability import logs
from credence_common.observability.metrics import ENTRYPOINT_CALLS, ENTRYPOINT_LATENCY, check_broker, serve_metrics
from gateway import dispatch, logged_paths
from gateway.amqp_rpc import RpcClient
from gateway.api import Call, Route, dump
from gateway.batching import AsyncBatcher
from gateway.http_server import (
    INCOMPLETE_BODY,
    LISTEN_BACKLOG,
    TIMEOUT_BODY,
    ReadDeadlines,
    fit_connections_to_file_limit,
)

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "gateway/config.yml"
RPC_CLOSE_SECONDS = 5.0
MALFORMED_BODY = (b'{"error": {"code": "malformed_request", "message": "The request line or headers could not be '
                  b'read (400)."}}')
TOO_BUSY_BODY = json.dumps({"error": {"code": "service_unavailable", "message":
                                      "The gateway has too many connections; try again shortly."}}).encode()
PROBLEM_HEADERS = [(b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-store"),
                   (b"x-content-type-options", b"nosniff")]


class BodyDeadlinePassed(Exception):
    pass


class AsyncServiceCalls:
    """``call.rpc`` of a natively awaited handler: the RPC client with this request's context and deadline."""

    def __init__(self, edge: Edge, context: dict, timeout: float):
        self._edge = edge
        self._context = context
        self._timeout = timeout

    async def call(self, service: str, method: str, *args):
        return await self._edge.rpc.call(service, method, *args, context=self._context, timeout=self._timeout)

    async def public_check(self, request: dict, client: str) -> dict:
        """Rides with the other checks of the moment in one ``public_checks`` round trip."""
        return dispatch.batched_outcome(await self._edge.check_batcher.submit(
            {"request": request, "client": client}, lambda items: self.call("verification", "public_checks", items)))

    async def candidate_results(self, principal, candidate_id: str) -> dict:
        """Rides with the other reads of the moment in one ``results_for_candidates`` round trip, its actor
        signed with theirs in one token (``dispatch.results_batch``)."""
        signer = self._edge.gateway.actor_signer
        return dispatch.batched_outcome(await self._edge.results_batcher.submit(
            (principal, candidate_id),
            lambda items: self.call("scoring", "results_for_candidates", *dispatch.results_batch(signer, items))))


class ThreadServiceCalls:
    """``call.rpc`` of a synchronous handler running in the thread pool: each call runs on the event loop and
    the thread waits for it (the deadline is the RPC's own)."""

    def __init__(self, calls: AsyncServiceCalls, loop: asyncio.AbstractEventLoop):
        self._calls = calls
        self._loop = loop

    def _wait(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def call(self, service: str, method: str, *args):
        return self._wait(self._calls.call(service, method, *args))

    def public_check(self, request: dict, client: str) -> dict:
        return self._wait(self._calls.public_check(request, client))

    def candidate_results(self, principal, candidate_id: str) -> dict:
        return self._wait(self._calls.candidate_results(principal, candidate_id))


async def _public_certificate_check(call: Call):
    return await call.rpc.public_check(dump(call.body), call.client_address)


async def _my_results(call: Call):
    return await call.rpc.candidate_results(call.principal, call.principal.subject)


# the hot routes, awaited on the loop: the same forwarding as their handlers in gateway/routes/ (verification.py
# public_certificate_check, scoring.py my_results)
NATIVE_HANDLERS = {"public_certificate_check": _public_certificate_check, "my_results": _my_results}


class Edge:
    """The process's state: the shared request rules (dispatch.Gateway), the RPC client, the batchers and the
    thread pool."""

    def __init__(self, config: dict):
        self.config = config
        self.gateway = dispatch.Gateway(config, environment())
        self.deadlines = ReadDeadlines.from_config(config)
        self.rpc = RpcClient(self.gateway.amqp_uri, caller="gateway")
        self.check_batcher = AsyncBatcher(self.gateway.check_batch_max, self.gateway.check_batches_in_flight)
        self.results_batcher = AsyncBatcher(self.gateway.results_batch_max, self.gateway.results_batches_in_flight)
        self.executor = ThreadPoolExecutor(max_workers=int(config.get("max_workers", 64)),
                                           thread_name_prefix="handler")
        self.native = str(config.get("GATEWAY_NATIVE_HOT_ROUTES", "1")).lower() not in ("0", "false", "no")

    def calls(self, context: dict, timeout: float | None = None) -> AsyncServiceCalls:
        return AsyncServiceCalls(self, context, self.gateway.rpc_timeout if timeout is None else timeout)


def incoming(request: Request) -> dispatch.Incoming:
    query: dict = {}
    if request.scope.get("query_string"):  # most requests have none: skip building starlette's QueryParams
        for key, value in request.query_params.multi_items():
            query.setdefault(key, value)  # the first value, as werkzeug's ``dict(request.args)``
    length = request.headers.get("content-length")
    # the path from the scope, as ``request.url.path`` gives it, without building the whole URL
    return dispatch.Incoming(method=request.method, path=request.scope["path"], headers=request.headers,
                             remote_addr=request.client.host if request.client else "", query=query,
                             content_length=int(length) if length and length.isdigit() else None)


def has_body(request: dispatch.Incoming) -> bool:
    return bool(request.content_length) or "transfer-encoding" in request.headers


async def read_body(request: Request, limit: int, deadline_seconds: float) -> bytes:
    """At most ``limit`` + 1 bytes of the body (the caller refuses more), all within the body deadline."""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(deadline_seconds):
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
    except TimeoutError:
        raise BodyDeadlinePassed() from None
    return b"".join(chunks)


def to_response(answer: dispatch.Answer, correlation_id: str, close: bool = False) -> Response:
    headers = {**answer.headers, logs.HEADER: correlation_id}
    if close:
        headers["Connection"] = "close"
    return Response(answer.body, status_code=answer.status, headers=headers)


def body_deadline_answer() -> dispatch.Answer:
    return dispatch.Answer(408, {**dispatch.JSON_HEADERS}, TIMEOUT_BODY)


def observed(name: str, rule: str):
    """Wraps an endpoint ``(edge, request, correlation_id) -> (Answer, close)``: the correlation id, the access
    log line and the entrypoint metrics, as the nameko binding's TracedHttp and Metrics do."""

    def decorate(endpoint):
        # the metric children of this route, found once: ``labels()`` costs a lock and a lookup per request
        calls = {outcome: ENTRYPOINT_CALLS.labels("gateway", name, "http", outcome) for outcome in ("ok", "error")}
        latency = ENTRYPOINT_LATENCY.labels("gateway", name, "http")

        async def run(request: Request) -> Response:
            started = time.perf_counter()
            edge: Edge = request.app.state.edge
            correlation_id = dispatch.correlation_id(request.headers)
            outcome = "ok"
            try:
                answer, close = await endpoint(edge, request, correlation_id)
            except BodyDeadlinePassed:
                answer, close = body_deadline_answer(), True
            except ClientDisconnect:
                answer, close = dispatch.Answer(400, dict(dispatch.JSON_HEADERS), INCOMPLETE_BODY), True
            except Exception as failure:
                outcome = "error"
                with logs.correlation_scope(correlation_id):
                    answer, close = dispatch.answer_for_failure(name, failure), False
            dispatch.log_access(request.method, rule, answer.status, started, correlation_id)
            calls[outcome].inc()
            latency.observe(time.perf_counter() - started)
            return to_response(answer, correlation_id, close)

        return run

    return decorate


def api_endpoint(route: Route):
    async def endpoint(edge: Edge, request: Request, correlation_id: str):
        gateway = edge.gateway
        request_in = incoming(request)
        context = {logs.CONTEXT_KEY: correlation_id}
        received = None
        try:
            if dispatch.read_before_admission(route, request_in):
                received = await read_body(request, route.max_body_bytes, edge.deadlines.body_seconds)
            principal = dispatch.admit(gateway, route, request_in)
            dispatch.refuse_declared_size(request_in, route.max_body_bytes)
            if received is None:
                received = await read_body(request, route.max_body_bytes, edge.deadlines.body_seconds)
            raw = dispatch.read_body(request_in, lambda size: received[:size], route.max_body_bytes)
            native = NATIVE_HANDLERS.get(route.name) if edge.native else None
            calls = edge.calls(context)
            if native is not None:
                call = dispatch.prepare_call(gateway, route, request_in, principal, raw, request.path_params,
                                             calls, context)
                return dispatch.success_answer(route, await native(call)), False
            loop = asyncio.get_running_loop()

            def handle():
                with logs.correlation_scope(correlation_id):
                    call = dispatch.prepare_call(gateway, route, request_in, principal, raw, request.path_params,
                                                 ThreadServiceCalls(calls, loop), context)
                    return route.handler(call)

            return dispatch.success_answer(route, await loop.run_in_executor(edge.executor, handle)), False
        except BodyDeadlinePassed:
            raise
        except Exception as failure:
            with logs.correlation_scope(correlation_id):
                # a refusal before the body was read: the rest of the body would be read as the next request
                return dispatch.answer_for_failure(route.name, failure), received is None and has_body(request_in)

    return endpoint


async def unknown_route(edge: Edge, request: Request, correlation_id: str):
    return dispatch.unknown_route(edge.gateway, incoming(request)), False


async def health(edge: Edge, request: Request, correlation_id: str):
    return dispatch.health(), False


async def ready(edge: Edge, request: Request, correlation_id: str):
    started = time.perf_counter()
    problem = await asyncio.get_running_loop().run_in_executor(None, dispatch.broker_problem, edge.gateway.amqp_uri)
    if problem is not None:
        return dispatch.broker_unreachable(problem), False
    broker_ms = (time.perf_counter() - started) * 1000
    calls = edge.calls({logs.CONTEXT_KEY: correlation_id}, timeout=2.0)

    async def probe(service):
        try:
            return service, (await calls.call(service, "health"))["status"]
        except Exception:
            return service, "unavailable"

    return dispatch.ready(broker_ms, dict(await asyncio.gather(*map(probe, dispatch.SERVICES)))), False


async def openapi(edge: Edge, request: Request, correlation_id: str):
    return dispatch.openapi(edge.gateway), False


async def asyncapi(edge: Edge, request: Request, correlation_id: str):
    return dispatch.asyncapi(edge.gateway), False


async def verify_page(edge: Edge, request: Request, correlation_id: str):
    return dispatch.verify_page(), False


async def verify_submit(edge: Edge, request: Request, correlation_id: str):
    request_in = incoming(request)
    too_large = dispatch.verify_form_too_large(request_in)
    if too_large is not None:
        return too_large, False
    raw = await read_body(request, dispatch.VERIFY_FORM_MAX_BYTES, edge.deadlines.body_seconds)
    calls = edge.calls({logs.CONTEXT_KEY: correlation_id})
    loop = asyncio.get_running_loop()
    # the page's rules are synchronous (dispatch.verify_submit): run them in a thread, the check on the loop
    return await loop.run_in_executor(edge.executor, lambda: dispatch.verify_submit(
        edge.gateway, request_in, raw, ThreadServiceCalls(calls, loop).public_check)), False


async def report_page(edge: Edge, request: Request, correlation_id: str):
    calls = edge.calls({logs.CONTEXT_KEY: correlation_id})
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(edge.executor, lambda: dispatch.report_page(
        edge.gateway, incoming(request), request.path_params["report_code"],
        ThreadServiceCalls(calls, loop).call)), False


OPERATION_ENDPOINTS = {"health": health, "ready": ready, "openapi": openapi, "asyncapi": asyncapi,
                       "verify_page": verify_page, "verify_submit": verify_submit, "report_page": report_page}


def starlette_path(rule: str) -> str:
    """werkzeug's ``/things/<thing_id>`` (its default converter: one segment, as Starlette's) as Starlette's
    ``/things/{thing_id}``; the route table uses no other converter."""
    return rule.replace("<", "{").replace(">", "}")


def precedence(rule: str) -> tuple[int, ...]:
    """Starlette takes the first route that matches, werkzeug the most specific (a fixed segment before a
    parameter, position by position: ``/verification-reports/public-key`` before
    ``/verification-reports/<report_code>``); sorting by this key gives Starlette werkzeug's choice."""
    return tuple(1 if "<" in segment else 0 for segment in rule.split("/"))


def routes(edge: Edge) -> list[StarletteRoute]:
    table = [(route.path, StarletteRoute(starlette_path(route.path),
                                         observed(route.name, route.path)(api_endpoint(route)), methods=[route.method]))
             for route in edge.gateway.routes]
    table += [(rule, StarletteRoute(starlette_path(rule), observed(name, rule)(OPERATION_ENDPOINTS[name]),
                                    methods=[method])) for name, method, rule in dispatch.OPERATIONS]
    table = [route for _rule, route in sorted(table, key=lambda entry: precedence(entry[0]))]
    # whatever no route takes, any method: JSON 404 or 405 (Starlette would answer a wrong method in text). Given
    # a function, Starlette's Route takes only GET; given an ASGI app, every method, and a full match of any
    # method wins over another route's partial (wrong-method) match
    table.append(StarletteRoute("/{rest:path}", AnyMethod(observed("unknown_route", "/<path:rest>")(unknown_route))))
    return table


class StaticRoutesFirst:
    """The router's entry: a request for a path without parameters (most of them: /api/v1/me/results, the public
    check) goes straight to its route through a dict, instead of Starlette testing the routes' patterns one by
    one (about 7 % of the gateway's samples under the result-reading load: docs/performance.md). It is the route
    Starlette would have chosen: in the sorted table a route without parameters comes before every route with
    one that has as many segments (``precedence``), and one with another number of segments cannot match the
    path. Anything else (a path with parameters, a wrong method, the catch-all) goes to Starlette's scan. It
    replaces the router's ``middleware_stack`` (the app has no router-level middleware;
    ``tests/unit/test_asgi_gateway.py`` checks that this front is in place)."""

    def __init__(self, router):
        self._router = router
        self.table: dict[tuple[str, str], StarletteRoute] = {}
        for route in router.routes:
            if isinstance(route, StarletteRoute) and not route.param_convertors and route.methods:
                for method in route.methods:
                    self.table.setdefault((route.path, method), route)  # the first, as Starlette's scan

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self.table.get((scope["path"], scope["method"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self._router)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self._router.app(scope, receive, send)


class AnyMethod:
    """An endpoint as a plain ASGI app, so that its Starlette route takes every method."""

    def __init__(self, endpoint):
        self._app = request_response(endpoint)

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)


def create_app(config: dict) -> Starlette:
    edge = Edge(config)

    @asynccontextmanager
    async def lifespan(app):
        await edge.rpc.start()
        try:
            yield
        finally:
            try:  # a broker that does not answer the close must not hold the stop
                async with asyncio.timeout(RPC_CLOSE_SECONDS):
                    await edge.rpc.close()
            except TimeoutError:
                log.warning("the RPC connection did not close within %s s; stopping anyway", RPC_CLOSE_SECONDS)
            edge.executor.shutdown(wait=False, cancel_futures=True)

    app = Starlette(routes=routes(edge), lifespan=lifespan)
    app.router.redirect_slashes = False  # /health/ is an unknown path, as in the nameko binding
    app.router.middleware_stack = StaticRoutesFirst(app.router)
    app.state.edge = edge
    return app


# --- uvicorn ---------------------------------------------------------------------------------------------

async def _too_busy(scope, receive, send) -> None:
    """uvicorn's answer when ``limit_concurrency`` is reached, in JSON like every other error, and when to come back
    (a slot frees as soon as any connection ends)."""
    await send({"type": "http.response.start", "status": 503,
                "headers": [*PROBLEM_HEADERS, (b"retry-after", b"1"),
                            (b"content-length", str(len(TOO_BUSY_BODY)).encode())]})
    await send({"type": "http.response.body", "body": TOO_BUSY_BODY})


class DeadlineProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol with a total deadline for each request's line and headers: from the
    connection's start, and from the end of each answer on a kept-alive connection, cancelled when the headers
    are in (a byte every few seconds does not push it back). When it passes, a connection on which part of a
    request had come gets a 408, an idle one is just closed (a 408 there could be read as the answer to the
    client's next request)."""

    header_seconds = 10.0  # set by serve()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._request_started = False
        self._header_timer = self.loop.call_later(self.header_seconds, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        timer, self._header_timer = getattr(self, "_header_timer", None), None
        if timer is not None:
            timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            self._request_started = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not (self.cycle and not self.cycle.response_complete):
            self._cancel_header_deadline()
            self._arm_header_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_started:
            body = TIMEOUT_BODY.encode()
            head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(
                name + b": " + value + b"\r\n" for name, value in PROBLEM_HEADERS)
            self.transport.write(head + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                                 + body)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own answer to a request it cannot parse is text; every error of the gateway is JSON
        self._cancel_header_deadline()
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        content += [name + b": " + value + b"\r\n" for name, value in PROBLEM_HEADERS]
        content += [b"content-length: " + str(len(MALFORMED_BODY)).encode() + b"\r\n", b"connection: close\r\n\r\n",
                    MALFORMED_BODY]
        self.transport.write(b"".join(content))
        self.transport.close()


def serve(config: dict) -> int:
    deadlines = ReadDeadlines.from_config(config)
    DeadlineProtocol.header_seconds = deadlines.header_seconds
    httptools_impl.service_unavailable = _too_busy  # the module-level app uvicorn answers with when too busy
    host, _, port = str(config.get("WEB_SERVER_ADDRESS", "127.0.0.1:8000")).rpartition(":")
    # a path may hold a secret: uvicorn's error lines (which can quote a request) go through the same redaction
    # as eventlet's in the nameko binding, and its access log (paths) is off; dispatch.log_access names rules
    app = create_app(config)
    logged_paths.install(logging.getLogger("uvicorn.error"), app.state.edge.gateway.path_redactor)
    serve_metrics(int(config.get("METRICS_PORT") or 0), config.get("METRICS_ADDRESS", "0.0.0.0"),
                  lambda: {"broker": check_broker(config.get("AMQP_URI"))})
    server = GatewayServer(uvicorn.Config(
        app, host=host, port=int(port), loop="uvloop", http=DeadlineProtocol, lifespan="on",
        access_log=False, log_config=None, server_header=False, date_header=False,
        timeout_keep_alive=max(1, int(deadlines.header_seconds)), backlog=LISTEN_BACKLOG,
        # uvicorn counts the asking connection among the open ones (503 once ``len(connections) >= limit``): + 1
        # serves exactly GATEWAY_MAX_CONNECTIONS, as the nameko binding does
        limit_concurrency=fit_connections_to_file_limit(deadlines.max_connections) + 1,
        timeout_graceful_shutdown=int(float(config.get("SHUTDOWN_GRACE_SECONDS", 25)))))
    # uvicorn stops on SIGTERM or SIGINT and then raises the signal again under the handler it found (so that the
    # process would end "killed by SIGTERM"); here that handler ends it as the nameko runner does: 0 after a
    # graceful stop, 1 when the stop was forced (tests/integration/test_http_deadlines.py)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signum, _frame: _exit(1 if server.forced else 0))
    server.run()
    return 1 if server.forced else 0


def _exit(status: int) -> None:
    raise SystemExit(status)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, stopping as credence_common/runtime/runner.py stops a service: the first SIGTERM (or Ctrl-C)
    drains (no new connections, the requests in flight finish), a second one, or a drain longer than
    ``SHUTDOWN_GRACE_SECONDS``, forces the stop, and a forced stop exits 1."""

    forced = False

    def handle_exit(self, sig, frame) -> None:
        if self.should_exit:  # a second signal, whichever: stop waiting (uvicorn would for SIGINT only)
            self.force_exit = self.forced = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        began = time.monotonic()
        await super().shutdown(sockets)
        # uvicorn cancels what is still running once the grace has passed, and says so only in its log
        if time.monotonic() - began >= self.config.timeout_graceful_shutdown:
            self.forced = True


def main(argv: list[str]) -> int:
    from credence_common.observability.gc_tuning import tune_garbage_collector
    from credence_common.observability.logs import configure_logging, log_format

    # stopped while it starts (nothing served yet): a clean exit, not "killed by SIGTERM"
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signum, _frame: _exit(0))

    config = load_config(argv[0] if argv else DEFAULT_CONFIG)
    try:
        fmt = log_format(config)
    except ValueError as refusal:
        print(refusal, file=sys.stderr)
        return 2
    configure_logging("gateway", level=config.get("LOG_LEVEL", "INFO"), fmt=fmt)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    try:
        assert_safe_for_environment("gateway", config)
    except ConfigurationRefused as refusal:
        print(refusal, file=sys.stderr)
        return 3
    log.info("starting gateway (asgi)")
    tune_garbage_collector()
    return serve(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
