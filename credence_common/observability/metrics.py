"""Prometheus metrics for every service: entrypoint counts, latency, errors, outbox backlog; and the
service's probes.

Each service serves, on its own port (``METRICS_PORT``; 0 or absent means not served, which the in-process
tests use): ``/metrics``; ``/health`` (the process answers: a liveness probe); ``/ready`` (200 when its
database and the broker answer within two seconds, else 503 naming which does not: a readiness probe)."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import eventlet
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

from credence_common.contracts.errors import is_fault

log = logging.getLogger(__name__)

ENTRYPOINT_CALLS = Counter(
    "credence_entrypoint_calls_total",
    "Entrypoint executions (rpc, event handler, http, timer) by outcome: ok, rejected (a typed "
    "refusal such as invalid input) or error (a fault).",
    ["service", "entrypoint", "kind", "outcome"],
)
ENTRYPOINT_LATENCY = Histogram(
    "credence_entrypoint_duration_seconds",
    "Entrypoint execution time.",
    ["service", "entrypoint", "kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_BACKLOG = Gauge("credence_outbox_backlog", "Events written but not yet published.", ["service"])
OUTBOX_PUBLISHED = Counter("credence_outbox_published_total", "Events published by the relay.", ["service"])
OUTBOX_PUBLISH_FAILURES = Counter(
    "credence_outbox_publish_failures_total", "Relay rounds that failed to publish.", ["service"]
)
EVENTS_DUPLICATE = Counter(
    "credence_events_duplicate_total", "Redelivered events recognised and ignored.", ["service", "event_type"]
)

_KINDS = {"Rpc": "rpc", "EventHandler": "event", "HttpRequestHandler": "http", "Timer": "timer"}
_served_ports: set[int] = set()


def entrypoint_kind(entrypoint) -> str:
    """rpc, event, http or timer, for nameko's entrypoints and our subclasses of them (IdempotentRpc,
    ReliableEventHandler, the gateway's TracedHttp), so that dashboards and alerts can select by kind."""
    for cls in type(entrypoint).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return type(entrypoint).__name__.lower()


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # probes every few seconds would drown the log
        pass


def check_database(db_uri: str | None) -> str:
    if not db_uri:
        return "ok"
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from credence_common.persistence.db import normalise_db_uri

    uri = normalise_db_uri(db_uri)
    # SQLite: a 2 s busy timeout; libpq: a 2 s connect timeout, which libpq applies only to a blocking connect,
    # so a green process (where psycopg2 connects through the wait callback) is held to 3 s by eventlet
    engine = create_engine(uri, poolclass=NullPool,
                           connect_args={"timeout": 2} if uri.startswith("sqlite") else {"connect_timeout": 2})
    try:
        with eventlet.Timeout(3), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except (Exception, eventlet.Timeout) as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        engine.dispose()


def check_broker(amqp_uri: str | None) -> str:
    from kombu import Connection

    try:
        with Connection(amqp_uri, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def probe_app(readiness: Callable[[], dict] | None):
    metrics_app = make_wsgi_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path not in ("/health", "/ready"):
            return metrics_app(environ, start_response)
        checks = (readiness() if readiness else {}) if path == "/ready" else {}
        ready = all(value == "ok" for value in checks.values())
        body = json.dumps({"status": ("ok" if path == "/health" else "ready" if ready else "not_ready"),
                           **checks}).encode()
        start_response("200 OK" if ready else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_metrics(port: int, address: str = "0.0.0.0", readiness: Callable[[], dict] | None = None) -> None:
    if port and port not in _served_ports:
        server = make_server(address, port, probe_app(readiness), server_class=_ThreadingServer,
                             handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
        _served_ports.add(port)
        log.info("metrics and probes on http://%s:%s/metrics, /health, /ready", address, port)


class Metrics(DependencyProvider):
    def setup(self):
        config = self.container.config
        serve_metrics(int(config.get("METRICS_PORT") or 0), config.get("METRICS_ADDRESS", "0.0.0.0"),
                      lambda: {"database": check_database(config.get("DB_URI")),
                               "broker": check_broker(config.get("AMQP_URI"))})
        self._started: dict[int, float] = {}

    def worker_setup(self, worker_ctx):
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(id(worker_ctx), None)
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        labels = (self.container.service_name, entrypoint.method_name, kind)
        if exc_info is None:
            outcome = "ok"
        elif is_fault(exc_info[1]):  # a database outage answered as a 503 is still the service's fault
            outcome = "error"
        else:
            outcome = "rejected"
        ENTRYPOINT_CALLS.labels(*labels, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(*labels).observe(time.perf_counter() - started)
