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
