"""Publishes the outbox to RabbitMQ, at least once, with publisher confirms.

Runs as a green thread inside the service container; with several replicas of a service, one relays at a time
(``relay_turn``, an advisory lock: no row is locked). A round reads pending events in a short read, publishes
them all on a channel in confirm mode, waits once for the broker's confirms (``PublisherConfirms``: a confirm
per message, waited for one by one, cost a round trip each and capped bulk issuing), then stamps published, in a
short write transaction, the events the broker confirmed up to the first it refused or did not confirm in time.
That one and those after it stay pending and go again in the next round, in order; a crash between the publish
and the stamp republishes them too: consumers are idempotent.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import eventlet
from kombu import Connection, Exchange, Producer, Queue
from nameko.extensions import DependencyProvider
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from credence_common.bus.queues import QUORUM, declare_event_queue, preferred_queue_type
from credence_common.contracts.envelope import exchange_name, utcnow
from credence_common.contracts.topology import subscriptions_published_by
from credence_common.observability.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from credence_common.persistence.db import Database
from credence_common.persistence.messaging import wait_for_broker
from credence_common.persistence.prepared import any_of_array, in_list

log = logging.getLogger(__name__)


def event_exchange(publisher: str) -> Exchange:
    # Must match nameko's get_event_exchange declaration exactly, or the broker refuses it.
    return Exchange(exchange_name(publisher), type="topic", durable=True, delivery_mode=2, auto_delete=False)


def declare_topology(connection: Connection, publisher: str, queue_type: str = QUORUM) -> None:
    """The exchange this service publishes to and the queues of every internal subscriber."""
    exchange = event_exchange(publisher)
    channel = connection.channel()
    try:
        exchange(channel).declare()
    finally:
        channel.close()
    for subscription in subscriptions_published_by(publisher):
        # the same declaration as the consumer's (credence_common.bus.reliable_events), or the broker refuses one
        declare_event_queue(connection, Queue(subscription.queue_name, exchange=exchange,
                                              routing_key=subscription.event.event_type, durable=True),
                            queue_type)


@contextmanager
def relay_turn(engine, service: str):
    """Yields True when this process may relay now. On PostgreSQL only one replica of a service relays at a
    time: a transaction-scoped advisory lock, held for the round, so events leave in the order they were
    written and none is published twice by two replicas; the lock goes with the transaction, so a replica
    that dies hands over at once. SQLite has one process per database file: always its turn."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection, connection.begin():
        yield bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"),
                                      {"key": f"credence.outbox_relay.{service}"}).scalar())


class PublishNotConfirmed(Exception):
    """The broker refused some events of a round, or did not confirm them in time."""


class PublisherConfirms:
    """The confirms of one channel in confirm mode (RabbitMQ's publisher confirms): delivery tags count the
    channel's publishes from 1; the broker acks (or, when it could not take a message, nacks) each tag, or with
    ``multiple`` every tag up to one, in any order. ``wait`` returns the tags of a round that were acked."""

    def __init__(self, channel):
        channel.confirm_select()
        channel.events["basic_ack"].add(self._acked)
        channel.events["basic_nack"].add(self._nacked)
        self._published = 0
        self._outstanding: set[int] = set()
        self._acked_tags: set[int] = set()
        self._nacked_tags: set[int] = set()

    def next_tag(self) -> int:
        """The tag the channel's next publish will get (call it before each publish)."""
        self._published += 1
        self._outstanding.add(self._published)
        return self._published

    def _settled(self, delivery_tag: int, multiple: bool) -> set[int]:
        tags = {tag for tag in self._outstanding if tag <= delivery_tag} if multiple else {delivery_tag}
        self._outstanding -= tags
        return tags

    def _acked(self, delivery_tag, multiple):
        self._acked_tags |= self._settled(delivery_tag, multiple)

    def _nacked(self, delivery_tag, multiple):
        self._nacked_tags |= self._settled(delivery_tag, multiple)

    def wait(self, connection: Connection, tags: set[int], timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while tags & self._outstanding:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:  # nothing came within the second: look at the deadline again
                continue
        acked = tags & self._acked_tags
        self._acked_tags -= tags
        self._nacked_tags -= tags
        return acked


class OutboxRelay(DependencyProvider):
    confirm_timeout = 30.0  # seconds a round waits for the broker's confirms before it counts as failed

    def __init__(self, outbox_model, batch_size: int = 200, poll_interval: float = 1.0):
        self.outbox_model = outbox_model
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._running = False
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: PublisherConfirms | None = None
        self._stamp = None

    def setup(self):
        self.service_name = self.container.service_name
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.poll_interval = float(self.container.config.get("OUTBOX_POLL_INTERVAL", self.poll_interval))
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.exchange = event_exchange(self.service_name)
        self.queue_type = preferred_queue_type(self.container.config)

    def start(self):
        self._running = True
        wait_for_broker(self.amqp_uri, self.service_name)  # start-up waits for the broker instead of crashing
        self._connect()  # declares the queues
        self.container.spawn_managed_thread(self._run, identifier=f"{self.service_name}.outbox_relay")

    def stop(self):
        self._running = False
        self.database.commit_signal.notify()
        self._disconnect()

    def kill(self):
        self.stop()

    def _connect(self):
        if self._producer is not None:
            return
        connection = Connection(self.amqp_uri)
        connection.ensure_connection(max_retries=3)
        declare_topology(connection, self.service_name, self.queue_type)
        channel = connection.channel()
        self._confirms = PublisherConfirms(channel)
        self._connection = connection
        self._producer = Producer(channel, exchange=self.exchange)

    def _disconnect(self):
        connection, self._connection, self._producer, self._confirms = self._connection, None, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # the connection may already be dead; nothing to save
                pass

    def _run(self):
        backoff = self.poll_interval
        while self._running:
            try:
                published = self.relay_once()
                backoff = self.poll_interval
            except Exception:
                OUTBOX_PUBLISH_FAILURES.labels(self.service_name).inc()
                log.warning("%s: outbox relay round failed; retrying in %.1fs", self.service_name, backoff,
                            exc_info=True)
                self._disconnect()
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if published < self.batch_size:
                self.database.commit_signal.wait(self.poll_interval)

    def pending_count(self) -> int:
        with Session(self.database.engine) as session:
            return session.scalar(
                select(func.count()).select_from(self.outbox_model).where(self.outbox_model.published_at.is_(None))
            )

    def relay_once(self) -> int:
        with relay_turn(self.database.engine, self.service_name) as mine:
            if not mine:  # another replica of this service is relaying; this one stands by
                OUTBOX_BACKLOG.labels(self.service_name).set(self.pending_count())
                return 0
            return self._relay_rows()

    def _stamp_statement(self):
        # Core, built once: the ORM's bulk update of a round's 200 seqs, compiled afresh each round with an
        # expanding IN, was 9 % of the issuing process, over a quarter of its relay's time (py-spy,
        # docs/performance.md "Late night, 2026-12-06"); on PostgreSQL the seqs are one array parameter, so the
        # statement's text never changes.
        # (Built on first use: the database's engine exists only once every dependency is set up.)
        if self._stamp is None:
            table = self.outbox_model.__table__
            pending = any_of_array if self.database.engine.dialect.name == "postgresql" else in_list
            self._stamp = (update(table).where(pending(table.c.seq, "seqs"))
                           .values(published_at=bindparam("now"), attempts=table.c.attempts + 1))
        return self._stamp

    def _relay_rows(self) -> int:
        table = self.outbox_model.__table__
        with self.database.engine.connect() as connection:  # Core rows: no ORM work for a plain read
            rows = connection.execute(
                select(table.c.seq, table.c.event_id, table.c.event_type, table.c.envelope_json)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.seq)
                .limit(self.batch_size)
            ).all()
        if not rows:
            OUTBOX_BACKLOG.labels(self.service_name).set(0)
            return 0
        self._connect()
        published_seqs = []
        tags: dict[int, int] = {}  # delivery tag -> outbox seq
        try:
            for row in rows:
                tags[self._confirms.next_tag()] = row.seq
                self._producer.publish(
                    row.envelope_json,
                    routing_key=row.event_type,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=row.event_id,
                    type=row.event_type,
                    retry=False,
                )
            confirmed = self._confirms.wait(self._connection, set(tags), self.confirm_timeout)
            # Stamped: the confirmed events up to the first that was not. Those after it go again with it, in
            # order, even if confirmed (their consumers drop the copy), so events still leave in the order written.
            for tag in sorted(tags):
                if tag not in confirmed:
                    break
                published_seqs.append(tags[tag])
            if len(confirmed) < len(tags):
                raise PublishNotConfirmed(f"{len(tags) - len(confirmed)} of {len(tags)} events not confirmed by "
                                          "the broker; they stay pending")
        finally:
            if published_seqs:
                with self.database.engine.begin() as connection:
                    connection.execute(self._stamp_statement(), {"seqs": published_seqs, "now": utcnow()})
                OUTBOX_PUBLISHED.labels(self.service_name).inc(len(published_seqs))
        if len(rows) < self.batch_size:
            OUTBOX_BACKLOG.labels(self.service_name).set(0)
        else:
            OUTBOX_BACKLOG.labels(self.service_name).set(self.pending_count())
        return len(published_seqs)
