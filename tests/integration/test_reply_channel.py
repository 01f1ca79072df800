"""RPC replies go out on one channel kept open per service process (credence_common/bus/reply_channel.py): a
channel or connection the broker closed is found before the next reply, which goes out on a fresh one."""

from __future__ import annotations

import pytest
from kombu import Exchange
from nameko.exceptions import IncorrectSignature, RemoteError

from credence_common.bus.entrypoints import rpc
from credence_common.bus.reply_channel import ReplyChannel
from tests.integration.conftest import rpc_proxy, wait_for


class EchoService:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


def reply_channel(container) -> ReplyChannel:
    return next(extension for extension in container.subextensions if isinstance(extension, ReplyChannel))


@pytest.fixture
def echo(container_factory, rabbit_config):
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    container = container_factory(EchoService, config)
    container.start()
    with rpc_proxy("echo", config) as proxy:
        yield container, proxy


def test_every_reply_of_a_service_goes_out_on_one_channel(echo):
    container, proxy = echo
    assert [proxy.echo(number) for number in range(20)] == list(range(20))
    channel = reply_channel(container)
    first = channel._producer
    assert [proxy.echo(number) for number in range(20, 40)] == list(range(20, 40))
    assert channel._producer is first


def test_a_channel_the_broker_closed_is_replaced_before_the_next_reply(echo):
    container, proxy = echo
    assert proxy.echo("before") == "before"
    channel = reply_channel(container)
    broken = channel._producer
    # A publish that breaks a rule (no such exchange): the broker closes the channel with a frame that nothing
    # reads on a connection that only writes. Replies on that channel would be dropped without a word.
    broken.publish(b"x", exchange=Exchange("no-such-exchange"), routing_key="x", retry=False)
    assert [proxy.echo(number) for number in range(5)] == list(range(5))
    assert channel._producer is not broken


def test_a_connection_the_broker_closed_is_replaced_before_the_next_reply(echo, rabbit_manager):
    container, proxy = echo
    assert proxy.echo("before") == "before"
    channel = reply_channel(container)
    local_port = channel._connection.connection.sock.getsockname()[1]
    name = wait_for(lambda: next((connection["name"] for connection in rabbit_manager.get_connections()
                                  if connection.get("peer_port") == local_port), None),
                    what="the reply connection listed by the management API")
    rabbit_manager.delete_connection(name)  # as a broker restart or an operator would
    assert [proxy.echo(number) for number in range(5)] == list(range(5))


def test_a_call_that_does_not_fit_the_method_is_refused_as_nameko_refuses_it(echo):
    _container, proxy = echo
    with pytest.raises((IncorrectSignature, RemoteError)) as refused:
        proxy.echo(1, 2)
    assert "IncorrectSignature" in type(refused.value).__name__ + str(getattr(refused.value, "exc_type", ""))
    assert proxy.echo(3) == 3
