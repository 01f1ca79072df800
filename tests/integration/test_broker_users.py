"""The per-process broker users of deploy/broker_users.py on a real RabbitMQ: a service runs under its own user,
and that user cannot consume another's queue, snoop another's RPC calls, or publish a call as the gateway."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote, urlsplit

import pika
import pytest
import requests
from pika.exceptions import AMQPChannelError, AMQPConnectionError

from credence_common.contracts.topology import SUBSCRIPTIONS
from deploy import broker_users
from services.certificates.service import CertificatesService
from tests.integration.conftest import signed_actor

STAFF = signed_actor({"subject": "staff:clerk", "role": "staff"})


class Broker:
    """Every process's user, made by ``deploy.broker_users.apply`` (as docker-compose's broker-users job does) on
    the test's vhost; the names get a suffix because users are broker-wide and other tests run alongside."""

    def __init__(self, api_uri: str, amqp_uri: str, vhost: str):
        self.api = api_uri.rstrip("/")
        self.host = urlsplit(amqp_uri).hostname
        self.port = urlsplit(amqp_uri).port or 5672
        self.vhost = vhost
        self.suffix = "-" + uuid.uuid4().hex[:8]
        self.passwords = {principal: uuid.uuid4().hex for principal in broker_users.PRINCIPALS}
        self.names = broker_users.apply(self.api, self.passwords, vhost=vhost, suffix=self.suffix)

    def user(self, principal: str) -> tuple[str, str]:
        return broker_users.user_name(principal) + self.suffix, self.passwords[principal]

    def amqp_uri(self, principal: str) -> str:
        name, password = self.user(principal)
        return f"pyamqp://{name}:{password}@{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    def channel(self, principal: str):
        name, password = self.user(principal)
        connection = pika.BlockingConnection(pika.ConnectionParameters(
            self.host, self.port, self.vhost, pika.PlainCredentials(name, password)))
        channel = connection.channel()
        channel.confirm_delivery()
        return connection, channel

    def remove_all(self) -> None:
        for name in self.names:
            requests.delete(f"{self.api}/api/users/{name}", timeout=10)


@pytest.fixture
def broker(request, rabbit_config):
    instance = Broker(request.config.getoption("RABBIT_API_URI"), rabbit_config["AMQP_URI"], rabbit_config["vhost"])
    yield instance
    instance.remove_all()


def call_as(broker: Broker, principal: str, service: str, method: str, *args):
    """A nameko RPC the way the gateway's proxy makes it: its own reply queue ``rpc.reply-<caller>-<uuid>``."""
    connection, channel = broker.channel(principal)
    try:
        reply_id = str(uuid.uuid4())
        reply_queue = f"rpc.reply-{principal}-{reply_id}"
        channel.queue_declare(reply_queue, auto_delete=True)
        channel.queue_bind(reply_queue, broker_users.RPC_EXCHANGE, routing_key=reply_id)
        correlation = str(uuid.uuid4())
        channel.basic_publish(broker_users.RPC_EXCHANGE, f"{service}.{method}",
                              json.dumps({"args": list(args), "kwargs": {}}),
                              pika.BasicProperties(reply_to=reply_id, correlation_id=correlation,
                                                   content_type="application/json"), mandatory=True)
        for _method, properties, body in channel.consume(reply_queue, inactivity_timeout=30):
            assert properties is not None, f"{service}.{method} did not answer"
            if properties.correlation_id == correlation:
                return json.loads(body)
    finally:
        connection.close()


def refused(broker: Broker, principal: str, action) -> None:
    connection, channel = broker.channel(principal)
    try:
        with pytest.raises((AMQPChannelError, AMQPConnectionError)) as info:
            action(channel)
        assert "ACCESS_REFUSED" in str(info.value) or "403" in str(info.value), info.value
    finally:
        if connection.is_open:
            connection.close()


def test_a_service_runs_under_its_own_user_and_no_other_user_gets_at_its_queues(broker, start_service):
    start_service(CertificatesService, AMQP_URI=broker.amqp_uri("certificates"))

    # the service declared, bound and consumes everything it needs with its own permissions
    assert call_as(broker, "gateway", "certificates", "health")["result"]["status"] == "ok"
    answer = call_as(broker, "gateway", "certificates", "production_batches", STAFF)
    assert answer["error"] is None and "batches" in answer["result"], answer

    own_event_queue = next(s.queue_name for s in SUBSCRIPTIONS if s.consumer == "certificates")
    # another service's user cannot consume its RPC queue nor its event queues
    refused(broker, "scoring", lambda channel: channel.basic_get("rpc-certificates"))
    refused(broker, "scoring", lambda channel: channel.basic_get(own_event_queue))
    # ... nor listen in on its calls by binding a queue of its own to certificates' routing keys
    def snoop(channel):
        mine = f"rpc.reply-scoring-{uuid.uuid4()}"
        channel.queue_declare(mine, auto_delete=True)
        channel.queue_bind(mine, broker_users.RPC_EXCHANGE, routing_key="certificates.*")
    refused(broker, "scoring", snoop)
    # ... nor publish a call as the gateway does on the RPC exchange (straight into the queue through the default
    # exchange it can: its retry queues need that exchange; the unsigned actor of such a call is refused)
    refused(broker, "scoring", lambda channel: channel.basic_publish(
        broker_users.RPC_EXCHANGE, "certificates.close_batch", b"{}", mandatory=True))
    # ... nor publish events in another service's name
    refused(broker, "scoring", lambda channel: channel.basic_publish(
        "payments.events", "payment_succeeded", b"{}", mandatory=True))
    # the gateway's user calls, it does not consume a service's calls
    refused(broker, "gateway", lambda channel: channel.basic_get("rpc-certificates"))
    refused(broker, "gateway", lambda channel: channel.basic_publish("", "rpc-certificates", b"{}", mandatory=True))
