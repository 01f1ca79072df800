"""An asyncio client of nameko's RPC protocol (nameko 2.14, ``nameko/rpc.py``), over aio-pika.

The services stay nameko; only the caller changes. What goes on the wire is what nameko's ``RpcProxy`` sends:

- a persistent JSON message ``{"args": [...], "kwargs": {}}`` to the ``nameko-rpc`` topic exchange with routing
  key ``<service>.<method>``, ``mandatory`` and a publisher confirm, so that a service nobody consumes for comes
  back as a returned message (nameko's ``UnknownService``) instead of a wait for a reply that never comes;
- ``reply_to`` (this client's reply routing key) and a fresh ``correlation_id``;
- an ``expiration`` of the call's deadline, so that a call still waiting in the service's queue when the caller
  has given up is dropped by the broker instead of run late (nameko's proxy sets none);
- the caller's context as ``nameko.<key>`` headers (nameko's ``HeaderEncoder``): the correlation id
  (``nameko.correlation_id``, credence_common/observability/logs.py), the idempotency headers
  (credence_common/persistence/idempotency.py)
  and ``nameko.call_id_stack``, the list nameko's ``WorkerContext`` starts with the caller's call id.

A nameko service answers by publishing ``{"result": ..., "error": ...}`` to the same exchange with routing key =
``reply_to`` (RabbitMQ's direct reply-to is not what nameko does), so the client consumes from an exclusive queue
of its own bound to ``nameko-rpc`` with its id as routing key. The connection is aio-pika's robust one: when the
broker goes away it reconnects and declares a reply queue again, under a fresh name (``RpcClient._listen``); a call
in flight at that moment ends at its deadline (``service_timeout``), a call made while the broker is unreachable at
once (``broker_unavailable``), the same answers as the nameko gateway (credence_common/bus/remote.py).

``AMQP_URI`` may name every node of a RabbitMQ cluster (kombu's failover syntax, ``uri-a;uri-b;uri-c``:
credence_common/broker_addresses.py). aio-pika's robust connection reconnects to one URL only; ``FailoverConnection``
moves to the next node after a lost connection or a failed attempt, so the gateway follows the cluster round the
nodes as kombu does for the services (docs/operations.md "Running on a RabbitMQ cluster").

Bodies are encoded and decoded with kombu's JSON, which is what the services use, so that an answer reads the
same through either gateway; errors are rebuilt with nameko's own ``deserialize``: a registered
``CredenceError`` comes back as that class, anything else as nameko's ``RemoteError``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.exceptions import AMQPError, DeliveryError
from kombu.utils import json as kombu_json
from nameko.exceptions import deserialize
from pamqp.commands import Basic
from yarl import URL

import credence_common.bus.error_registry  # noqa: F401  (refusals come back as their own class)
from credence_common.broker_addresses import broker_uris
from credence_common.contracts.errors import ServiceUnavailable

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"  # nameko's default (its RPC_EXCHANGE_CONFIG key is not set anywhere here)
HEADER_PREFIX = "nameko"
CALL_ID_STACK_KEY = "call_id_stack"
CONTENT_TYPE = "application/json"


def amqp_url(uri: str) -> str:
    """kombu's ``pyamqp://`` / ``amqp://`` URI (what every config here holds) as aio-pika's ``amqp://`` URL. The
    path is the vhost in both ("/" or empty: the default vhost)."""
    parts = urlsplit(uri)
    scheme = "amqps" if parts.scheme == "amqps" else "amqp"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def amqp_urls(uri: str) -> list[str]:
    """Every node's aio-pika URL, from an ``AMQP_URI`` naming one node or several (``;``-separated)."""
    return [amqp_url(one) for one in broker_uris(uri)] or [amqp_url(uri)]


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over several nodes: each new attempt after a lost connection or a failed
    attempt goes to the next node, round the list (kombu's round-robin failover).

    aio-pika reads ``self.url`` once per attempt (``Connection.connect``); the two hooks that move it on are the
    connection's close callback and its private attempt (``_RobustConnection__connect_transport``, aio-pika 10;
    tests/unit/test_broker_addresses.py fails if an upgrade renames it)."""

    def __init__(self, urls: list[str], first: int = 0, **kwargs):
        self._urls = [URL(url) for url in urls]
        self._current = first % len(self._urls)
        super().__init__(self._urls[self._current], **kwargs)

    @property
    def url(self) -> URL:
        return self._urls[self._current]

    @url.setter
    def url(self, value) -> None:  # aio-pika sets it in __init__ (and update_secret): keep the list in step
        value = URL(value)
        hosts = [(u.host, u.port) for u in self._urls]
        if (value.host, value.port) in hosts:
            self._current = hosts.index((value.host, value.port))
            self._urls[self._current] = value
        else:
            self._urls[self._current] = value

    def _next_node(self) -> None:
        if len(self._urls) > 1:
            self._current = (self._current + 1) % len(self._urls)
            log.warning("broker connection: next attempt on %s", self)

    async def _on_connection_close(self, closing: asyncio.Future) -> None:
        if not (self._close_called or self.is_closed):
            self._next_node()
        await super()._on_connection_close(closing)

    async def _RobustConnection__connect_transport(self) -> None:
        attempted = self._current
        try:
            await super()._RobustConnection__connect_transport()  # type: ignore[misc]
        except Exception:
            if self._current == attempted:  # not moved on already by the close callback
                self._next_node()
            raise


CONNECT_TIMEOUT_SECONDS = 10.0


async def connect_failover(urls: list[str], timeout: float = CONNECT_TIMEOUT_SECONDS, **kwargs) -> FailoverConnection:
    """A connected ``FailoverConnection``: the first node that accepts, trying each once (aio-pika's first
    connection fails fast: a failed one is not reused). ``timeout`` bounds every attempt, the reconnections'
    too (aio-pika keeps it): an attempt that hangs on a node goes on to the next instead of waiting for ever."""
    failure: Exception | None = None
    for first in range(len(urls)):
        connection = FailoverConnection(urls, first=first, **kwargs)
        try:
            await connection.connect(timeout)
            return connection
        except Exception as exc:
            failure = exc
            await asyncio.gather(connection.close(), return_exceptions=True)
    assert failure is not None
    raise failure


def context_headers(context: dict, call_id: str) -> dict:
    """nameko's ``HeaderEncoder.get_message_headers`` of a worker context holding ``context``: every key as
    ``nameko.<key>``, ``None`` values dropped, plus the call id stack this call starts."""
    headers = {f"{HEADER_PREFIX}.{key}": value for key, value in context.items() if value is not None}
    headers[f"{HEADER_PREFIX}.{CALL_ID_STACK_KEY}"] = [call_id]
    return headers


class RpcClient:
    """``await client.call(service, method, *args, context=..., timeout=...)``; one per process, shared by every
    request (aio-pika's channel multiplexes the publishes; replies are matched by correlation id)."""

    def __init__(self, amqp_uri: str, caller: str = "gateway", exchange: str = RPC_EXCHANGE):
        self._urls = amqp_urls(amqp_uri)
        self._caller = caller
        self._exchange_name = exchange
        self._reply_key: str | None = None  # None: no reply queue on the current connection yet
        self._pending: dict[str, asyncio.Future] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._listening = asyncio.Lock()

    @property
    def reply_queue_name(self) -> str | None:
        if self._reply_key is None:
            return None
        return f"rpc.reply-{self._caller}-{self._reply_key}"  # nameko's RPC_REPLY_QUEUE_TEMPLATE

    async def start(self) -> None:
        self._connection = await connect_failover(self._urls, client_properties={
            "connection_name": f"{self._caller} rpc client"})
        # publisher confirms plus on_return_raises: an unroutable call (no queue for that service) raises
        # DeliveryError once the broker has returned it, as nameko's proxy raises UnknownService
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)  # a robust connection's channel
        self._channel = channel
        # nameko's services declare the exchange too (durable topic); declaring it here lets the gateway start first
        self._exchange = await channel.declare_exchange(self._exchange_name, aio_pika.ExchangeType.TOPIC,
                                                        durable=True)
        await self._listen()
        self._connection.close_callbacks.add(self._on_connection_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnect)

    async def _listen(self) -> None:
        """A reply queue of this connection's own: exclusive (it lives as long as the connection), under a fresh
        name on every connection. Not aio-pika's robust restore of the same name: in a cluster the old queue
        can outlive its connection for a moment on the node that died (its declaration refused with
        RESOURCE_LOCKED, or a consumer left on a queue that is then deleted, so that no reply came back: seen in
        the cluster fault suite, tests/faults/cluster.py). A reply to a call made on the old connection is lost;
        that call ends at its deadline."""
        assert self._channel is not None and self._exchange is not None
        async with self._listening:
            if self._reply_key is not None:
                return
            key = str(uuid.uuid4())
            queue = await self._channel.declare_queue(f"rpc.reply-{self._caller}-{key}", exclusive=True,
                                                      auto_delete=True, robust=False)
            await queue.bind(self._exchange, routing_key=key, robust=False)
            # nameko's reply listener acks every reply; no_ack does the same with one frame less
            await queue.consume(self._on_reply, no_ack=True, robust=False)
            self._reply_key = key
            log.info("replies come back through %s", queue.name)

    async def _replace_channel(self, refused_on, service: str) -> None:
        """A fresh channel (and reply queue) after the broker refused (nacked) a call on this one. Seen in the
        cluster fault suite (tests/faults/cluster.py), RabbitMQ 3.10: after the node leading a quorum queue was
        SIGKILLed, the channel the gateway opened on another node during the election had every call to that one
        service refused for minutes, while a fresh connection's publishes to it were routed and confirmed."""
        async with self._listening:
            if self._channel is not refused_on or self._connection is None:  # replaced already
                return
            log.warning("the broker refused a call to %s on this channel; opening a fresh one", service)
            old, self._reply_key = self._channel, None
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            assert isinstance(channel, aio_pika.abc.AbstractRobustChannel)
            self._exchange = await channel.declare_exchange(self._exchange_name, aio_pika.ExchangeType.TOPIC,
                                                            durable=True)
            self._channel = channel
        if old is not None:
            await asyncio.gather(old.close(), return_exceptions=True)
        await self._listen()

    async def _on_connection_lost(self, *_args) -> None:
        self._reply_key = None  # the reply queue goes with the connection: no call may name it any more

    async def _on_reconnect(self, *_args) -> None:
        self._reply_key = None  # the old queue went with the old connection
        try:
            await self._listen()
        except Exception as error:  # the next call tries again (``call`` listens first when it must)
            log.warning("the gateway's reply queue was not declared after reconnecting: %s", error)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ServiceUnavailable("service_unavailable", "The gateway is stopping."))
        self._pending.clear()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed and self._connection.connected.is_set()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is None or future.done():  # a reply after its deadline: nobody waits for it any more
            log.debug("a reply nobody waits for (its call timed out)")
            return
        try:
            future.set_result(kombu_json.loads(message.body))
        except ValueError as error:
            future.set_exception(error)

    async def call(self, service: str, method: str, *args, context: dict | None = None, timeout: float):
        """The method's answer; raises what the service raised (a ``CredenceError``, else nameko's
        ``RemoteError``), or ``ServiceUnavailable`` when the service is not running, does not answer within
        ``timeout`` seconds or the broker cannot be reached."""
        if self._exchange is None:
            raise RuntimeError("RpcClient.start() was not awaited")
        if self._reply_key is None:  # reconnected, and the reply queue not declared yet
            try:
                await self._listen()
            except (AMQPError, ConnectionError, RuntimeError) as error:
                raise ServiceUnavailable("broker_unavailable", "The platform's message broker cannot be "
                                                               "reached right now; try again shortly.") from error
        correlation_id = str(uuid.uuid4())
        call_id = f"{self._caller}.{method}.{uuid.uuid4()}"
        message = aio_pika.Message(
            kombu_json.dumps({"args": list(args), "kwargs": {}}).encode("utf-8"),
            content_type=CONTENT_TYPE, content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=context_headers(context or {}, call_id),
            reply_to=self._reply_key, correlation_id=correlation_id,
            # a call still queued at its deadline has been answered 503 service_timeout already: the broker drops
            # it, rather than have a service that was down or swamped work through calls nobody waits for
            expiration=timeout)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            async with asyncio.timeout(timeout):
                channel = self._channel
                try:
                    await self._exchange.publish(message, routing_key=f"{service}.{method}", mandatory=True)
                except DeliveryError as error:
                    if isinstance(error.frame, Basic.Nack):  # refused by the queue, not unroutable
                        await self._replace_channel(channel, service)
                        raise ServiceUnavailable("broker_unavailable", "The platform's message broker cannot be "
                                                 "reached right now; try again shortly.") from None
                    raise ServiceUnavailable("service_unavailable",
                                             f"The {service} service is not running; try again shortly.") from None
                except (AMQPError, ConnectionError, RuntimeError) as error:
                    # the broker is restarting or unreachable (aio-pika raises RuntimeError for a closed channel)
                    raise ServiceUnavailable("broker_unavailable", "The platform's message broker cannot be "
                                                                   "reached right now; try again shortly.") from error
                reply = await future
        except TimeoutError:
            raise ServiceUnavailable("service_timeout",
                                     f"The {service} service did not answer in time; try again shortly.") from None
        finally:
            self._pending.pop(correlation_id, None)
        if reply.get("error") is not None:
            raise deserialize(reply["error"])
        return reply.get("result")
