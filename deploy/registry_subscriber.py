"""An example downstream subscriber: a registry that keeps its own copy of Credence's certificates in step
with the certificate events, using nothing of Credence but the published contract (docs/events.md).

    python -m deploy.registry_subscriber --amqp-uri amqp://guest:guest@127.0.0.1:5672/ --db registry.sqlite

What it shows a registry's developers:
- its own durable queue, bound to the ``certificates.events`` topic exchange with ``credence.certificate.#``:
  events published while it is down wait in the queue;
- each message is acknowledged only after the registry committed what it learnt, so a crash redelivers it;
- every certificate event carries ``certificate_id`` and ``sequence`` (the certificate's version, increasing
  with every change; gaps are normal): an event not newer than what the registry holds is skipped, so
  redeliveries and events that overtake each other end in the same state;
- unknown event types and newer versions (``….v2``) are acknowledged and ignored, not fatal;
- it reads each message with the official CloudEvents SDK (``cloudevents``), not by hand: Credence publishes
  the envelope in structured mode (the whole event is the JSON body), so any CloudEvents SDK's structured-mode
  JSON reader takes it as it is, the ``correlationid`` extension included. A message that is not a CloudEvent
  is logged and acknowledged (it would fail the same way on every redelivery). The channels, the envelope and
  every payload's schema are in the AsyncAPI document the gateway serves at ``/asyncapi.json``.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3

import pika
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_structured_event
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

from credence_common.broker_addresses import pika_parameters

EXCHANGE = "certificates.events"
ROUTING_KEY = "credence.certificate.#"
STATUS_BY_EVENT = {
    "credence.certificate.issued.v1": "valid",
    "credence.certificate.revoked.v1": "revoked",
    "credence.certificate.superseded.v1": "superseded",
}

log = logging.getLogger("registry")

# What the SDK raises for a body that is not a structured-mode CloudEvent 1.0: invalid JSON or UTF-8 (ValueError),
# a missing or mistyped attribute (its validation error), a time that is not RFC 3339 (ValueError, TypeError),
# JSON that is not an object (AttributeError)
UNREADABLE = (BaseCloudEventException, ValueError, TypeError, AttributeError)


def read_event(body: bytes, content_type: str | None = None) -> CloudEvent:
    """One message as a CloudEvent, through the SDK's RabbitMQ binding. Credence's messages are structured mode
    but say ``content_type: application/json`` (not ``application/cloudevents+json``), so the binding's
    auto-detection (``from_rabbitmq``) would take them for binary mode: the structured reader is asked for
    explicitly. Raises one of ``UNREADABLE`` when the body is not a CloudEvent 1.0."""
    return from_structured_event(RabbitMQMessage(headers={}, content_type=content_type, body=body))


def open_registry(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute("""CREATE TABLE IF NOT EXISTS certificates (
        certificate_id TEXT PRIMARY KEY, certificate_number TEXT, holder_name TEXT, program_name TEXT,
        issued_on TEXT, status TEXT NOT NULL, sequence INTEGER NOT NULL, last_event_id TEXT NOT NULL)""")
    connection.commit()
    return connection


def apply(registry: sqlite3.Connection, event: CloudEvent) -> bool:
    """Apply one event (as the SDK read it); True when it changed the registry."""
    status = STATUS_BY_EVENT.get(event.get_type())
    data = event.get_data()
    if status is None or not isinstance(data, dict) or "certificate_id" not in data or not data.get("sequence"):
        return False  # not an event this registry keeps, or one from before sequences existed
    held = registry.execute("SELECT sequence FROM certificates WHERE certificate_id = ?",
                            (data["certificate_id"],)).fetchone()
    if held is not None and held[0] >= data["sequence"]:
        # A redelivery, or an older event that arrived late: its status is stale, but details the registry
        # has not seen yet (an issue overtaken by its revocation) are still filled in.
        registry.execute("UPDATE certificates SET certificate_number = COALESCE(certificate_number, ?), "
                         "holder_name = COALESCE(holder_name, ?), program_name = COALESCE(program_name, ?), "
                         "issued_on = COALESCE(issued_on, ?) WHERE certificate_id = ?",
                         (data.get("certificate_number"), data.get("holder_name"), data.get("program_name"),
                          data.get("issued_on"), data["certificate_id"]))
        registry.commit()
        return False
    if held is None:
        registry.execute("INSERT INTO certificates (certificate_id, status, sequence, last_event_id) "
                         "VALUES (?, ?, ?, ?)", (data["certificate_id"], status, data["sequence"],
                                                 event.get_id()))
    registry.execute("UPDATE certificates SET status = ?, sequence = ?, last_event_id = ?, "
                     "certificate_number = COALESCE(?, certificate_number), "
                     "holder_name = COALESCE(?, holder_name), program_name = COALESCE(?, program_name), "
                     "issued_on = COALESCE(?, issued_on) WHERE certificate_id = ?",
                     (status, data["sequence"], event.get_id(), data.get("certificate_number"),
                      data.get("holder_name"), data.get("program_name"), data.get("issued_on"),
                      data["certificate_id"]))
    registry.commit()
    return True


def declare(channel, queue: str) -> None:
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)  # as Credence declares it
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, EXCHANGE, routing_key=ROUTING_KEY)


def run(amqp_uri: str, db_path: str, queue: str, max_messages: int | None = None,
        idle_timeout: float | None = None) -> int:
    """Consume until stopped (or until ``max_messages`` / ``idle_timeout``, for tests); returns how many
    messages were handled."""
    registry = open_registry(db_path)
    connection = pika.BlockingConnection(pika_parameters(amqp_uri))  # every node of a cluster
    handled = 0
    try:
        channel = connection.channel()
        declare(channel, queue)
        channel.basic_qos(prefetch_count=50)
        for method, properties, body in channel.consume(queue, inactivity_timeout=idle_timeout):
            if method is None:
                break  # idle for idle_timeout seconds
            try:
                event = read_event(body, properties.content_type)
            except UNREADABLE as error:
                log.error("dropping a message that is not a CloudEvent: %s", error)
                channel.basic_ack(method.delivery_tag)
                continue
            if apply(registry, event):
                data = event.get_data()
                log.info("%s %s -> sequence %s (correlationid %s)", event.get_type(), data["certificate_id"],
                         data["sequence"], event.get_extension("correlationid"))
            channel.basic_ack(method.delivery_tag)  # after the commit: a crash before it redelivers
            handled += 1
            if max_messages is not None and handled >= max_messages:
                break
        channel.cancel()
    finally:
        connection.close()
        registry.close()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-uri", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--db", default="registry.sqlite")
    parser.add_argument("--queue", default="example-registry.certificates")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(args.amqp_uri, args.db, args.queue)


if __name__ == "__main__":
    main()
