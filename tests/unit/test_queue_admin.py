"""credence_common/bus/queue_admin.py without a broker: the RPC queues it knows are the ones the services declare
(bound as nameko binds them, with ReplicatedRpcConsumer's arguments), and the warning of a service that keeps the
type it found names the command that converts it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from nameko.containers import ServiceContainer
from nameko.rpc import Rpc, RpcConsumer

from credence_common.bus import queue_admin
from credence_common.bus.queues import CLASSIC, QUORUM, queue_arguments
from credence_common.bus.rpc_queue import RPC_HINT, ReplicatedRpcConsumer

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = sorted(p.parent.name for p in ROOT.glob("services/*/service.py"))


def nameko_rpc_queue(name: str):
    """Bind the service's entrypoints as nameko does (no broker is touched) and take its RPC consumer's queue."""
    module = importlib.import_module(f"services.{name}.service")
    container = ServiceContainer(getattr(module, f"{name.capitalize()}Service"), {"AMQP_URI": "memory://"})
    consumers = {ep.rpc_consumer for ep in container.entrypoints if isinstance(ep, Rpc)}
    if not consumers:
        return None
    (consumer,) = consumers
    assert isinstance(consumer, ReplicatedRpcConsumer)
    RpcConsumer.setup(consumer)  # nameko's part of its setup: the queue, without declaring it
    return consumer.queue


def test_the_rpc_services_are_the_services_with_rpc_entrypoints():
    assert sorted(queue_admin.RPC_SERVICES) == [name for name in SERVICE_NAMES if nameko_rpc_queue(name) is not None]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_an_rpc_queue_is_described_as_nameko_declares_it(name):
    nameko_queue = nameko_rpc_queue(name)
    described = queue_admin.rpc_queue(name).queue(CLASSIC)
    assert described.name == nameko_queue.name == f"rpc-{name}"
    assert described.durable and nameko_queue.durable
    ((exchange, routing_key),) = queue_admin.rpc_queue(name).bindings
    assert (exchange.name, exchange.type, exchange.durable) == (
        nameko_queue.exchange.name,
        nameko_queue.exchange.type,
        nameko_queue.exchange.durable,
    )
    assert routing_key == nameko_queue.routing_key == f"{name}.*"
    # what ReplicatedRpcConsumer declares (declare_event_queue over nameko's arguments, none)
    for queue_type in (CLASSIC, QUORUM):
        assert (
            queue_admin.rpc_queue(name).queue(queue_type).queue_arguments
            == queue_arguments(queue_type, nameko_queue.queue_arguments)
            == {"x-queue-type": queue_type}
        )


def test_every_service_has_its_rpc_queue_among_its_queues_once():
    queues = queue_admin.all_queues(1.0, 6)
    assert len({q.name for q in queues}) == len(queues)
    for name in queue_admin.RPC_SERVICES:
        rpc = [q for q in queue_admin._selected(queues, name) if isinstance(q, queue_admin.RpcQueue)]
        assert [q.name for q in rpc] == [f"rpc-{name}"]
    # identity consumes no event: its RPC queue is all it has
    assert [q.name for q in queue_admin._selected(queues, "identity")] == ["rpc-identity"]
    assert not any(isinstance(q, queue_admin.RpcQueue) for q in queue_admin.platform_queues(1.0, 6))


def test_the_rpc_warning_names_the_command_that_converts_the_queue():
    hint = RPC_HINT.format(service="verification").format(preferred=QUORUM)
    assert "python -m credence_common.bus.queue_admin migrate verification --rpc-to quorum" in hint
    assert "rabbitmqctl" not in hint
