"""Event handlers that neither lose a message nor loop on one.

nameko's ``@event_handler`` acks and drops a message whose handler raised (or, with ``requeue_on_error``,
puts it straight back, so a message that always fails spins forever), and a message it cannot decode (bad
JSON, a content type it does not accept) kills the consumer, so the service restarts into the same
message. ``@reliable_event_handler`` instead:

* retries a failing message later, with backoff: it is republished to a delay queue of the service
  (``credence.retry.<service>.<delay>ms``, a fixed TTL per queue, so no message waits behind a longer one)
  that dead-letters it back to the handler's own queue when the delay is over;
* after ``EVENT_MAX_ATTEMPTS`` tries (default 6: delays of 1, 4, 16, 64 and 256 seconds with
  ``EVENT_RETRY_BASE_SECONDS`` = 1), or at once when retrying cannot help (undecodable body, wrong schema,
  unknown event type or version: ``PermanentFailure``), moves it to the service's dead-letter queue
  ``credence.dead-letters.<service>`` with the reason, the source queue and the number of attempts in its
  headers; ``python -m credence_common.bus.dead_letters`` lists, shows, replays and purges them;
* acks the original only after the copy was confirmed by the broker; if that publish fails, the original
  goes back to its queue instead. A crash at any point leaves the message in one of the queues (possibly
  in two, which the consumers' inbox deduplicates): never in none.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

import eventlet
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import get_producer
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import SharedExtension
from nameko.messaging import QueueConsumer
from prometheus_client import Gauge

from credence_common.bus.queues import QUORUM, declare_event_queue, preferred_queue_type
from credence_common.persistence.messaging import PermanentFailure, wait_for_broker

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-credence-attempt"
REASON_HEADER = "x-credence-reason"
SOURCE_QUEUE_HEADER = "x-credence-source-queue"
FAILED_AT_HEADER = "x-credence-failed-at"

DEAD_LETTERS = Gauge("credence_dead_letters", "Messages waiting in the service's dead-letter queue.", ["service"])


def dead_letter_queue_name(service: str) -> str:
    return f"credence.dead-letters.{service}"


def retry_delays(base_seconds: float, max_attempts: int) -> list[float]:
    """The wait before each retry: attempt 1 failed -> base, then x4 each time; ``max_attempts - 1`` waits."""
    return [base_seconds * 4 ** level for level in range(max(0, max_attempts - 1))]


def retry_queue_name(service: str, delay_seconds: float) -> str:
    # the delay is in the name: a queue's TTL cannot change once declared, so a new setting is a new queue
    return f"credence.retry.{service}.{round(delay_seconds * 1000)}ms"


def retry_queue_arguments(delay_seconds: float) -> dict:
    return {"x-message-ttl": max(1, round(delay_seconds * 1000)), "x-dead-letter-exchange": ""}


def declare_dead_letter_topology(connection: Connection, service: str, delays: list[float],
                                 queue_type: str = QUORUM) -> None:
    """The service's dead-letter queue and one delay queue per retry delay (idempotent)."""
    declare_event_queue(connection, Queue(dead_letter_queue_name(service), durable=True), queue_type)
    for delay in delays:
        name = retry_queue_name(service, delay)
        # fanout: the routing key is left alone, and on expiry the message is dead-lettered through the
        # default exchange with that key, which is the name of the handler queue it came from
        declare_event_queue(connection, Queue(name, exchange=Exchange(name, type="fanout", durable=True),
                                              durable=True, queue_arguments=retry_queue_arguments(delay)),
                            queue_type)


def _copy_headers(message) -> dict:
    return {k: v for k, v in (message.headers or {}).items() if k != "x-death"}


class DeadLetterQueueConsumer(QueueConsumer):
    """nameko's queue consumer, except that a message it cannot decode is dead-lettered instead of raising
    in the consumer thread (which would kill the container and redeliver the same message on restart), and
    that it lets a batching handler have enough messages in hand to fill its batches."""

    @property
    def prefetch_count(self):
        batches = [getattr(provider, "batch_size", 1) for provider in self._providers]
        return max([self.container.max_workers] + [2 * size for size in batches])

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._undecodable, provider)
        return consumers

    def _undecodable(self, provider, message, exc) -> None:
        provider.set_aside(message, f"undecodable message: {type(exc).__name__}: {exc}", attempt=1,
                           permanent=True)


class DeadLetterMonitor(SharedExtension):
    """Keeps the ``credence_dead_letters`` gauge of the service current (one per container)."""

    interval = 15.0

    def start(self):
        self._gt = self.container.spawn_managed_thread(self._watch)

    def stop(self):
        gt = getattr(self, "_gt", None)
        if gt is not None:
            gt.kill()

    def _watch(self):
        service = self.container.service_name
        while True:
            try:
                with Connection(self.container.config[AMQP_URI_CONFIG_KEY], connect_timeout=5) as connection:
                    channel = connection.channel()
                    _name, depth, _consumers = channel.queue_declare(dead_letter_queue_name(service), passive=True)
                    DEAD_LETTERS.labels(service).set(depth)
                    channel.close()
            except Exception as exc:  # the next round tries again; the gauge keeps its last value
                log.debug("dead-letter depth of %s not read: %s", service, exc)
            eventlet.sleep(self.interval)


class ReliableEventHandler(EventHandler):
    queue_consumer = DeadLetterQueueConsumer()
    monitor = DeadLetterMonitor()

    def __init__(self, source_service, event_type, batch_size: int = 1, **kwargs):
        """``batch_size`` > 1: the method gets a list of messages (those that arrived together, up to that many)
        and applies them in one transaction (``credence_common.bus.consumers.consume_batch``); if the batch fails,
        each message is tried again on its own, and only a message that fails alone is retried later or
        dead-lettered. Bulk issuing and release day are where one transaction per event costs too much."""
        kwargs.pop("requeue_on_error", None)
        super().__init__(source_service, event_type, requeue_on_error=False, **kwargs)
        self.batch_size = max(1, int(batch_size))
        self._waiting: list = []  # (body, message) that arrived, not yet handed to a worker
        self._alone: list = []  # from a failed batch: each to be tried on its own
        self._gathering = False
        self.batches = 0  # for tests and metrics: how many batches carried how many messages
        self.batched_messages = 0
        self.largest_batch = 0

    def handle_message(self, body, message):
        if self.batch_size == 1:
            return super().handle_message(body, message)
        self._waiting.append((body, message))
        self._start_gathering()

    def _start_gathering(self) -> None:
        if not self._gathering:
            self._gathering = True
            self.container.spawn_managed_thread(self._gather, identifier=f"{self.method_name}.batches")

    def _gather(self):
        # Workers are started from this thread only: a worker that started others from its own result handler
        # would wait for a free worker while holding one, and ten of them at once wait for ever.
        try:
            eventlet.sleep(0.005)  # the messages prefetched with this one arrive in the meantime
            while self._alone or self._waiting:
                if self._alone:
                    self._dispatch([self._alone.pop(0)])
                else:
                    chunk, self._waiting = self._waiting[:self.batch_size], self._waiting[self.batch_size:]
                    self._dispatch(chunk)
        finally:
            self._gathering = False

    def _dispatch(self, chunk: list) -> None:
        try:
            self.container.spawn_worker(self, ([body for body, _message in chunk],), {},
                                        context_data=self.unpack_message_headers(chunk[0][1]),
                                        handle_result=partial(self._batch_processed, chunk))
        except ContainerBeingKilled:
            for _body, message in chunk:
                self.queue_consumer.requeue_message(message)

    def _batch_processed(self, chunk, worker_ctx, result=None, exc_info=None):
        if len(chunk) == 1 or exc_info is None:
            if exc_info is None:
                self.batches += 1
                self.batched_messages += len(chunk)
                self.largest_batch = max(self.largest_batch, len(chunk))
            for _body, message in chunk:
                self.handle_message_processed(message, result, exc_info)
        else:
            log.warning("%s: a batch of %d on %s failed (%s: %s); trying each message on its own",
                        self.container.service_name, len(chunk), self.queue.name, exc_info[0].__name__,
                        str(exc_info[1])[:300])
            self._alone.extend(chunk)
            self._start_gathering()
        return result, exc_info

    def setup(self):
        super().setup()
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.max_attempts = max(1, int(config.get("EVENT_MAX_ATTEMPTS", 6)))
        self.delays = retry_delays(float(config.get("EVENT_RETRY_BASE_SECONDS", 1.0)), self.max_attempts)
        queue_type = preferred_queue_type(config)
        wait_for_broker(self.amqp_uri, self.container.service_name)  # start-up waits instead of crashing
        with Connection(self.amqp_uri) as connection:
            declare_dead_letter_topology(connection, self.container.service_name, self.delays, queue_type)
            # fixes the queue's arguments before nameko's consumer declares it (again on every reconnection)
            declare_event_queue(connection, self.queue, queue_type)

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            retried = int((message.headers or {}).get(ATTEMPT_HEADER, 0))
            if retried:  # the end of the warnings logged for its failed attempts
                log.warning("%s: attempt %d on %s succeeded", self.container.service_name, retried + 1,
                            self.queue.name)
            return
        error = exc_info[1]
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 0)) + 1
        self.set_aside(message, f"{type(error).__name__}: {error}", attempt,
                       permanent=isinstance(error, PermanentFailure))

    def set_aside(self, message, reason: str, attempt: int, permanent: bool) -> None:
        """Retry later or dead-letter, then ack; if the broker did not take the copy, requeue instead."""
        try:
            if permanent or attempt >= self.max_attempts:
                self._publish_copy(message, "", dead_letter_queue_name(self.container.service_name), {
                    ATTEMPT_HEADER: attempt, REASON_HEADER: reason[:2000], SOURCE_QUEUE_HEADER: self.queue.name,
                    FAILED_AT_HEADER: datetime.now(UTC).isoformat()})
                log.error("%s: dead-lettered a message from %s after %d attempt(s): %s",
                          self.container.service_name, self.queue.name, attempt, reason[:500])
            else:
                delay = self.delays[attempt - 1]
                self._publish_copy(message, retry_queue_name(self.container.service_name, delay), self.queue.name,
                                   {ATTEMPT_HEADER: attempt, REASON_HEADER: reason[:2000]})
                log.warning("%s: attempt %d on %s failed (%s); retrying in %.1f s",
                            self.container.service_name, attempt, self.queue.name, reason[:300], delay)
        except Exception:
            log.exception("%s: could not set a failed message aside; it goes back to %s",
                          self.container.service_name, self.queue.name)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _publish_copy(self, message, exchange: str, routing_key: str, extra_headers: dict) -> None:
        properties = message.properties or {}
        with get_producer(self.amqp_uri, True) as producer:  # confirmed before the original is acked
            producer.publish(message.body, exchange=exchange, routing_key=routing_key,
                             headers={**_copy_headers(message), **extra_headers},
                             content_type=properties.get("content_type") or message.content_type or "application/json",
                             content_encoding=properties.get("content_encoding") or message.content_encoding
                             or "utf-8",
                             delivery_mode=2, retry=True, retry_policy={"max_retries": 3})


reliable_event_handler = ReliableEventHandler.decorator
