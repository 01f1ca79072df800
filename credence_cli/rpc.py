"""A blocking RPC client for the operator's CLI, speaking nameko's RPC protocol with pika.

nameko's own standalone proxy wants eventlet's monkey-patching, which a CLI that also opens databases and draws
progress bars is better without. The protocol is small: publish ``{"args": [...], "kwargs": {...}}`` to the
``nameko-rpc`` topic exchange with routing key ``<service>.<method>``; the service replies to the exchange with
the ``reply_to`` routing key, so the reply queue is bound there; the answer is ``{"result": ..., "error": ...}``.
"""

from __future__ import annotations

import json
import time
import uuid

import pika

from credence_common import broker_addresses
from credence_common.observability.logs import CONTEXT_KEY

RPC_EXCHANGE = "nameko-rpc"


class RemoteRefusal(Exception):
    """The service answered with an error: a typed refusal (``code`` and message) or a fault."""

    def __init__(self, error: dict):
        self.exc_type = error.get("exc_type", "Error")
        self.value = error.get("value", "")
        args = error.get("exc_args") or []
        self.code = args[0] if args and isinstance(args[0], str) else None
        self.message = args[1] if len(args) > 1 and isinstance(args[1], str) else self.value
        super().__init__(f"{self.exc_type}: {self.value}")


class Unanswered(Exception):
    """No answer in time: the service is down, busy or not there."""


def pika_parameters(amqp_uri: str) -> list[pika.URLParameters]:
    """Every node ``AMQP_URI`` names (one, or a cluster's, ``;``-separated): pika connects to the first that
    answers (credence_common/broker_addresses.py)."""
    return broker_addresses.pika_parameters(amqp_uri)


class RpcClient:
    def __init__(self, amqp_uri: str, correlation_id: str, timeout: float = 30.0):
        self.correlation_id = correlation_id
        self.timeout = timeout
        self.connection = pika.BlockingConnection(pika_parameters(amqp_uri))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()  # so that a request no service queue takes is refused at once
        self.channel.exchange_declare(RPC_EXCHANGE, exchange_type="topic", durable=True)
        self.reply_key = f"credence-cli-{uuid.uuid4()}"
        self.channel.queue_declare(self.reply_key, exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.reply_key, RPC_EXCHANGE, routing_key=self.reply_key)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, service: str, method: str, *args, **kwargs):
        request_id = str(uuid.uuid4())
        try:
            self.channel.basic_publish(
                RPC_EXCHANGE, f"{service}.{method}", json.dumps({"args": args, "kwargs": kwargs}),
                pika.BasicProperties(reply_to=self.reply_key, correlation_id=request_id,
                                     content_type="application/json", delivery_mode=2,
                                     headers={f"nameko.{CONTEXT_KEY}": self.correlation_id}),
                mandatory=True)
        except pika.exceptions.UnroutableError:
            raise Unanswered(f"{service} is not running (nothing consumes its RPC queue)") from None
        deadline = time.monotonic() + self.timeout
        for _method, properties, body in self.channel.consume(self.reply_key, inactivity_timeout=0.2):
            if body is not None and properties.correlation_id == request_id:
                self.channel.cancel()
                answer = json.loads(body)
                if answer.get("error"):
                    raise RemoteRefusal(answer["error"])
                return answer.get("result")
            if time.monotonic() > deadline:
                self.channel.cancel()
                raise Unanswered(f"{service} did not answer {method} within {self.timeout:.0f} s")
        raise Unanswered(f"{service}: the reply queue closed")
