"""RPC replies over one AMQP channel kept open per service process.

nameko's ``Responder`` publishes every reply through a fresh ``kombu.Connection`` (its URI parsed again), a
producer taken from kombu's pool and revived, and ``Connection.ensure``: about half of what a lone public check
cost verification's worker, more than its database work (profiled with yappi, docs/performance.md "Night,
2026-12-06"). Here one ``kombu.Producer`` on one channel serves every reply of the container; a lock keeps
two workers' frames from interleaving when a send has to wait for the socket.

What the pooled path did and this keeps:
- A reply that cannot be written raises (``ReplyNotSent``), after one fresh connection was tried. The caller
  (``IdempotentRpc.handle_result``) then leaves the request unacknowledged, so the broker redelivers it.
- No publisher confirm (as before, ``docs/reliability.md``): the reply goes to the caller's own transient queue.

A channel or connection the broker closed (a rule broken, an operator, a restart) is noticed before the next reply:
py-amqp reads what the broker sent, without waiting, before every publish (its ``connection.blocked``
capability), and raises the close it finds; the reply then goes out on a fresh connection
(``tests/integration/test_reply_channel.py``).
"""

from __future__ import annotations

import kombu
import kombu.serialization
from eventlet.semaphore import Semaphore
from kombu.exceptions import OperationalError
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
    PERSISTENT,
)
from nameko.exceptions import UnserializableValueError, serialize
from nameko.extensions import SharedExtension
from nameko.rpc import get_rpc_exchange


class ReplyNotSent(OperationalError):
    """The reply could not be written, on the kept-open connection nor on a fresh one."""


class ReplyChannel(SharedExtension):
    """One per container, shared by its RPC entrypoints (as nameko's ``RpcConsumer`` is)."""

    def setup(self) -> None:
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.ssl = config.get(AMQP_SSL_CONFIG_KEY)
        self.login_method = config.get(LOGIN_METHOD_CONFIG_KEY)
        self.exchange = get_rpc_exchange(config)
        self._lock = Semaphore()
        # what a broken channel or connection raises, from the transport (building a Connection connects nothing)
        unconnected = kombu.Connection(self.amqp_uri)
        self._errors = (*unconnected.connection_errors, *unconnected.channel_errors, OSError, OperationalError)
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None

    def stop(self) -> None:
        # Shared extensions stop after the workers have finished, so no reply is still on its way.
        with self._lock:
            self._close()

    kill = stop

    def send(self, request, result, exc_info) -> tuple:
        """Answer ``request`` (a kombu message) as nameko's ``Responder.send_response`` does: ``{"result",
        "error"}`` in the request's own serializer, to its ``reply_to``, with its ``correlation_id``; a result
        that cannot be serialized is answered as ``UnserializableValueError``. Returns (result, exc_info) as
        sent."""
        serializer = kombu.serialization.registry.type_to_name[request.properties["content_type"]]
        error = serialize(exc_info[1]) if exc_info is not None else None
        try:
            content_type, content_encoding, body = kombu.serialization.dumps(
                {"result": result, "error": error}, serializer)
        except Exception as exc:  # nameko's own "disaster avoidance": the error always serializes
            exc_info = (type(exc), exc, exc.__traceback__)
            error = serialize(UnserializableValueError(result))
            result = None
            content_type, content_encoding, body = kombu.serialization.dumps(
                {"result": None, "error": error}, serializer)
        self._publish(body, content_type, content_encoding, request.properties["reply_to"],
                      request.properties.get("correlation_id"))
        return result, exc_info

    def _publish(self, body, content_type, content_encoding, routing_key, correlation_id) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    producer = self._open()
                    producer.publish(body, routing_key=routing_key, correlation_id=correlation_id,
                                     content_type=content_type, content_encoding=content_encoding,
                                     delivery_mode=PERSISTENT, retry=False)
                    return
                except self._errors as exc:
                    self._close()
                    if attempt == 2:
                        raise ReplyNotSent(f"the reply could not be sent: {exc!r}") from exc

    def _open(self) -> kombu.Producer:
        if self._producer is None:
            connection = kombu.Connection(self.amqp_uri, ssl=self.ssl, login_method=self.login_method)
            connection.ensure_connection(max_retries=1)
            self._connection = connection
            self._producer = kombu.Producer(connection.channel(), exchange=self.exchange, auto_declare=False)
        return self._producer

    def _close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # closing a broken connection may fail in several ways; it is dropped anyway
                pass
