"""The labels of the entrypoint metrics, which the dashboard and the alert rules select on."""

from __future__ import annotations


def test_our_entrypoint_subclasses_are_counted_under_their_kind():
    """Dashboards and alerts select kind="rpc"|"http": a subclass must not become a kind of its own."""
    from credence_common.bus.entrypoints import IdempotentRpc
    from credence_common.bus.reliable_events import ReliableEventHandler
    from credence_common.observability.metrics import entrypoint_kind
    from gateway.service import TracedHttp

    assert entrypoint_kind(IdempotentRpc.__new__(IdempotentRpc)) == "rpc"
    assert entrypoint_kind(ReliableEventHandler.__new__(ReliableEventHandler)) == "event"
    assert entrypoint_kind(TracedHttp.__new__(TracedHttp)) == "http"


def test_a_database_outage_answered_as_a_503_is_counted_as_an_error_a_refusal_as_rejected():
    """The error-rate alert (deploy/observability/prometheus/alerts.yml) selects outcome="error": a service whose
    own database fails answers its callers 503 database_unavailable, and must still count as failing."""
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from credence_common.bus.entrypoints import IdempotentRpc
    from credence_common.contracts.errors import DATABASE_UNAVAILABLE, Conflict, ServiceUnavailable
    from credence_common.observability.metrics import Metrics

    metrics = Metrics.__new__(Metrics)
    metrics.container = SimpleNamespace(service_name="metrics_probe")
    metrics._started = {}
    entrypoint = IdempotentRpc.__new__(IdempotentRpc)
    entrypoint.method_name = "call"

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("credence_entrypoint_calls_total", {
            "service": "metrics_probe", "entrypoint": "call", "kind": "rpc", "outcome": outcome}) or 0.0

    for error in (ServiceUnavailable(DATABASE_UNAVAILABLE, "try again"), RuntimeError("a bug"),
                  Conflict("concurrent_change", "try again"), ServiceUnavailable("service_timeout", "downstream")):
        metrics.worker_result(SimpleNamespace(entrypoint=entrypoint), None, (type(error), error, None))
    assert (count("error"), count("rejected")) == (2.0, 2.0)
