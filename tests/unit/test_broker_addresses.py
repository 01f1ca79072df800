"""AMQP_URI naming every node of a RabbitMQ cluster (kombu's ``;`` failover syntax), as each kind of client reads it:
credence_common/broker_addresses.py, the gateway's aio-pika client (gateway/amqp_rpc.py), the pika tools and the
production guard (credence_common/config.py). docs/operations.md "Running on a RabbitMQ cluster"."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from kombu import Connection

from credence_cli.rpc import pika_parameters as cli_pika_parameters
from credence_common.broker_addresses import broker_uris, first_broker_uri, pika_parameters
from credence_common.config import uses_guest_broker_user
from gateway.amqp_rpc import FailoverConnection, amqp_urls

CLUSTER = "pyamqp://svc:s3cret@rabbit-a:5672//;pyamqp://svc:s3cret@rabbit-b:5673//;pyamqp://svc:s3cret@rabbit-c:5674//"


def test_every_node_in_the_order_given():
    assert broker_uris(CLUSTER) == ["pyamqp://svc:s3cret@rabbit-a:5672//", "pyamqp://svc:s3cret@rabbit-b:5673//",
                                    "pyamqp://svc:s3cret@rabbit-c:5674//"]
    assert first_broker_uri(CLUSTER) == "pyamqp://svc:s3cret@rabbit-a:5672//"


def test_one_node_blanks_and_spaces():
    assert broker_uris("pyamqp://guest:guest@127.0.0.1:5672/") == ["pyamqp://guest:guest@127.0.0.1:5672/"]
    assert broker_uris(" amqp://a// ; ;amqp://b// ;") == ["amqp://a//", "amqp://b//"]
    assert broker_uris("") == [] and broker_uris(None) == []  # type: ignore[arg-type]


def test_a_node_without_credentials_gets_the_first_ones_as_kombu_does():
    uris = broker_uris("pyamqp://svc:s3cret@rabbit-a:5672//;pyamqp://rabbit-b:5672//")
    assert uris[1] == "pyamqp://svc:s3cret@rabbit-b:5672//"
    kombu = Connection("pyamqp://svc:s3cret@rabbit-a:5672//;pyamqp://rabbit-b:5672//")
    assert kombu.alt and kombu.userid == "svc"


def test_kombu_takes_the_same_value_as_its_failover_list():
    connection = Connection(CLUSTER)
    assert connection.alt == broker_uris(CLUSTER)
    assert (connection.hostname, connection.port) == ("rabbit-a", 5672)


def test_pika_gets_one_parameters_object_per_node():
    for parameters in (pika_parameters(CLUSTER), cli_pika_parameters(CLUSTER)):
        assert [(p.host, p.port) for p in parameters] == [("rabbit-a", 5672), ("rabbit-b", 5673), ("rabbit-c", 5674)]
        assert {p.credentials.username for p in parameters} == {"svc"}


def test_aio_pika_urls_of_every_node():
    assert amqp_urls(CLUSTER) == ["amqp://svc:s3cret@rabbit-a:5672//", "amqp://svc:s3cret@rabbit-b:5673//",
                                  "amqp://svc:s3cret@rabbit-c:5674//"]
    assert amqp_urls("pyamqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


@pytest.mark.parametrize("uri, guest", [
    (CLUSTER, False),
    ("pyamqp://svc:s3cret@rabbit-a//;pyamqp://guest:guest@rabbit-b//", True),  # any node as guest is refused
    ("pyamqp://svc:s3cret@rabbit-a//;pyamqp://rabbit-b//", False),  # the second takes the first's user
    ("pyamqp://rabbit-a//;pyamqp://rabbit-b//", True),
])
def test_the_guest_check_reads_every_node(uri, guest):
    assert uses_guest_broker_user({"AMQP_URI": uri}) is guest


def test_the_failover_connection_moves_round_the_nodes():
    async def check():
        connection = FailoverConnection(amqp_urls(CLUSTER), first=1)
        assert (connection.url.host, connection.url.port) == ("rabbit-b", 5673)
        connection._next_node()
        assert connection.url.host == "rabbit-c"
        connection._next_node()
        assert connection.url.host == "rabbit-a"
        assert connection.kwargs  # aio-pika parsed its parameters from the current URL

    asyncio.run(check())


def test_the_aio_pika_hook_the_failover_connection_overrides_still_exists():
    # FailoverConnection moves on after a failed attempt by overriding this private method of aio-pika 10; an
    # upgrade that renames it would silently keep the gateway on one node
    assert callable(getattr(aio_pika.RobustConnection, "_RobustConnection__connect_transport", None))
    assert "_on_connection_close" in vars(aio_pika.RobustConnection)
