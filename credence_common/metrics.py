"""Prometheus metrics for every service: entrypoint counts, latency, errors, outbox backlog.

Each service serves them on its own port (``METRICS_PORT``; 0 or absent means not served, which the
in-process tests use)."""

from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from credence_common.errors import CredenceError

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


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    if port and port not in _served_ports:
        start_http_server(port, addr=address)
        _served_ports.add(port)
        log.info("metrics on http://%s:%s/metrics", address, port)


class Metrics(DependencyProvider):
    def setup(self):
        serve_metrics(int(self.container.config.get("METRICS_PORT") or 0),
                      self.container.config.get("METRICS_ADDRESS", "0.0.0.0"))
        self._started: dict[int, float] = {}

    def worker_setup(self, worker_ctx):
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(id(worker_ctx), None)
        entrypoint = worker_ctx.entrypoint
        kind = _KINDS.get(type(entrypoint).__name__, type(entrypoint).__name__.lower())
        labels = (self.container.service_name, entrypoint.method_name, kind)
        if exc_info is None:
            outcome = "ok"
        elif isinstance(exc_info[1], CredenceError):
            outcome = "rejected"
        else:
            outcome = "error"
        ENTRYPOINT_CALLS.labels(*labels, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(*labels).observe(time.perf_counter() - started)
