"""The gateway's RPC client (gateway/amqp_rpc.py) answers a call as soon as its reply is in, whether or not the
broker has confirmed the publish yet (RabbitMQ confirms a persistent message once it is on disk, which can come
after the reply); a refusal the confirm brings still decides the call. The broker is replaced by an exchange whose
publish the test controls: real RabbitMQ cannot be made to hold a confirm back on demand (the integration tests,
tests/integration/test_amqp_rpc.py, cover the same client against a real broker)."""

from __future__ import annotations

import asyncio

import pytest
from kombu.utils import json as kombu_json

from credence_common.contracts.errors import ServiceUnavailable
from gateway.amqp_rpc import RpcClient


class Reply:
    def __init__(self, correlation_id: str, body: dict):
        self.correlation_id = correlation_id
        self.body = kombu_json.dumps(body).encode()


class HeldConfirms:
    """An exchange whose publish returns only when the test lets its confirm through (or raises what it is told
    to); ``answer`` makes the service's reply arrive while the publish still waits for its confirm."""

    def __init__(self, client: RpcClient, answer: dict | None = None, refusal: Exception | None = None):
        self.client = client
        self.answer = answer
        self.refusal = refusal
        self.confirm = asyncio.Event()
        self.published = 0

    async def publish(self, message, routing_key: str, mandatory: bool):
        self.published += 1
        if self.answer is not None:
            await self.client._on_reply(Reply(message.correlation_id, self.answer))
        if self.refusal is not None:
            raise self.refusal
        await self.confirm.wait()


def client_with(exchange_factory) -> tuple[RpcClient, HeldConfirms]:
    client = RpcClient("amqp://guest:guest@127.0.0.1:5672/")
    client._reply_key = "reply-key"  # as after ``start``: a reply queue is listening
    exchange = exchange_factory(client)
    client._exchange = exchange
    return client, exchange


def test_a_reply_that_comes_before_the_confirm_is_answered_without_waiting_for_it():
    async def check():
        client, exchange = client_with(lambda c: HeldConfirms(c, answer={"result": {"status": "ok"}, "error": None}))
        # the confirm is never let through: before the change the call waited for it until its deadline
        answer = await asyncio.wait_for(client.call("verification", "health", timeout=30), 5)
        assert answer == {"status": "ok"}
        assert exchange.published == 1 and client._pending == {}
        exchange.confirm.set()  # the late confirm is read and dropped, no error left unretrieved
        await asyncio.sleep(0)

    asyncio.run(check())


def test_a_refusal_the_broker_sends_instead_of_a_confirm_still_decides_the_call():
    async def check():
        from aio_pika.exceptions import AMQPConnectionError

        client, _exchange = client_with(lambda c: HeldConfirms(c, refusal=AMQPConnectionError("gone")))
        with pytest.raises(ServiceUnavailable) as refused:
            await asyncio.wait_for(client.call("verification", "health", timeout=30), 5)
        assert refused.value.code == "broker_unavailable"
        assert client._pending == {}

    asyncio.run(check())


def test_a_call_whose_confirm_and_reply_never_come_ends_at_its_deadline():
    async def check():
        client, exchange = client_with(HeldConfirms)
        with pytest.raises(ServiceUnavailable) as refused:
            await client.call("verification", "health", timeout=0.2)
        assert refused.value.code == "service_timeout"
        assert client._pending == {}
        assert exchange.published == 1

    asyncio.run(check())
