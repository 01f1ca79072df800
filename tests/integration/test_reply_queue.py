"""A service's reply queue (credence_common/bus/rpc_queue.py ``ExclusiveReplyListener``): exclusive to the connection
that consumes it and renamed on every (re)connection, so that a queue the broker deletes after a reconnection (a
dead cluster node's clean-up, seen in the cluster fault suite) cannot leave the caller without replies."""

from __future__ import annotations

import pytest
from amqp.exceptions import NotFound, ResourceLocked
from kombu import Connection
from nameko.testing.utils import get_extension

from credence_common.bus.entrypoints import rpc
from credence_common.bus.remote import call_with_deadline
from credence_common.bus.rpc_queue import ExclusiveReplyListener, RpcProxy
from tests.integration.conftest import rpc_proxy, wait_for


class EchoService:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


class AskingService:
    name = "asking"

    echo_rpc = RpcProxy("echo")

    @rpc
    def ask(self, value):
        return call_with_deadline(self.echo_rpc, "echo", "echo", value, timeout=5)


@pytest.fixture
def asking(container_factory, rabbit_config):
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    container_factory(EchoService, config).start()
    asking_container = container_factory(AskingService, config)
    asking_container.start()
    return config, rabbit_config["vhost"], get_extension(asking_container, ExclusiveReplyListener)


def held_by_another_connection(amqp_uri: str, queue: str) -> bool | None:
    """True when the queue exists exclusive to a connection other than the asking one (the broker refuses even a
    passive declaration of it: RESOURCE_LOCKED), False when it exists open to all, None when there is none."""
    with Connection(amqp_uri) as connection:
        try:
            connection.channel().queue_declare(queue, passive=True)
        except NotFound:
            return None
        except ResourceLocked:
            return True
        return False


def test_the_reply_queue_is_exclusive_and_bound_under_the_key_calls_name(asking, rabbit_manager):
    config, vhost, listener = asking
    with rpc_proxy("asking", config) as proxy:
        assert proxy.ask("hello") == "hello"
    assert listener.queue.name == f"rpc.reply-asking-{listener.routing_key}"
    queue = rabbit_manager.get_queue(vhost, listener.queue.name)
    assert queue["durable"] is False and queue["exclusive"] is True
    assert held_by_another_connection(config["AMQP_URI"], listener.queue.name) is True
    wait_for(lambda: rabbit_manager.get_queue(vhost, listener.queue.name).get("consumers") == 1,
             what="the management API counting the reply queue's one consumer")
    bindings = rabbit_manager.get_queue_bindings(vhost, listener.queue.name)
    assert any(b["source"] == "nameko-rpc" and b["routing_key"] == listener.routing_key for b in bindings)


def test_a_lost_connection_takes_the_reply_queue_along_and_brings_one_of_a_fresh_name(
    asking, rabbit_manager
):
    config, vhost, listener = asking
    with rpc_proxy("asking", config) as proxy:
        assert proxy.ask("before") == "before"
    old_queue = listener.queue.name
    # the caller's connections dropped by the broker, as a node that dies drops its clients (the management API
    # lists a new connection after a moment: drop what it lists until the reply consumer has reconnected)

    def reconnected_under_a_new_name() -> bool:
        if listener.queue.name != old_queue:
            return bool(held_by_another_connection(config["AMQP_URI"], listener.queue.name))
        for connection in rabbit_manager.get_connections():
            if connection.get("vhost") == vhost:
                rabbit_manager.delete_connection(connection["name"])
        return False

    wait_for(
        reconnected_under_a_new_name,
        interval=0.5,
        what="a reply queue of a new name, declared, after the connection was lost",
    )
    assert held_by_another_connection(config["AMQP_URI"], old_queue) is None  # gone with its connection
    with rpc_proxy("asking", config) as proxy:
        assert [proxy.ask(n) for n in range(5)] == list(range(5))
