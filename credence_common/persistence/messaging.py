"""Outbox and processed-event tables, shared by every service's own database.

``outbox``: an event is written here in the same transaction as the state change that caused it;
the relay publishes it afterwards (at least once) and stamps ``published_at``.
``processed_events``: a consumer records each event id in the same transaction as the handler's
effect, so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

import eventlet
from kombu import Connection
from pydantic import ValidationError
from sqlalchemy import Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence_common.contracts.envelope import EventEnvelope, EventPayload, P, ReceivedEvent, make_envelope, utcnow
from credence_common.persistence import appends
from credence_common.persistence.db import OUTBOX_WRITTEN
from credence_common.persistence.types import UTCDateTime

log = logging.getLogger(__name__)


def messaging_models(Base, envelope_type=Text):
    """Create the outbox and processed-event mapped classes on a service's own declarative base.

    ``envelope_type``: a service whose events carry personal data stores envelopes encrypted (a TypeDecorator
    over Text, e.g. certificates' ``Sealed``); the relay reads them back through the same type."""

    class OutboxEvent(Base):
        __tablename__ = "outbox"
        __table_args__ = (Index("ix_outbox_pending", "published_at", "seq"),)

        seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        event_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
        event_type: Mapped[str] = mapped_column(String(120), nullable=False)
        envelope_json: Mapped[str] = mapped_column(envelope_type, nullable=False)
        created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
        published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
        attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    class ProcessedEvent(Base):
        __tablename__ = "processed_events"

        event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
        event_type: Mapped[str] = mapped_column(String(120), nullable=False)
        processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    # every service answers Idempotency-Key retries from its own database (credence_common/persistence/idempotency.py)
    from credence_common.persistence.idempotency import CREATED_AT_INDEX, IDEMPOTENCY_RECORDS

    records = IDEMPOTENCY_RECORDS.to_metadata(Base.metadata)
    Index(CREATED_AT_INDEX, records.c.created_at)  # the prune timer deletes by age
    return OutboxEvent, ProcessedEvent


class Outbox:
    """Adds events to the current transaction."""

    def __init__(self, outbox_model):
        self.model = outbox_model

    def add(self, session: Session, payload: EventPayload, subject: str | None = None) -> EventEnvelope:
        envelope = make_envelope(payload, subject)
        session.info[OUTBOX_WRITTEN] = True
        appends.append(session, self.model, event_id=envelope.id, event_type=envelope.type,
                       envelope_json=envelope.model_dump_json(), created_at=envelope.time, attempts=0)
        return envelope


class Inbox:
    """Idempotent consumption: ``first_delivery`` is true once per event id, ever."""

    def __init__(self, processed_model):
        self.model = processed_model

    def first_delivery(self, session: Session, envelope: EventEnvelope) -> bool:
        if session.execute(select(self.model.event_id).where(self.model.event_id == envelope.id)).first():
            log.info("duplicate event %s (%s) ignored", envelope.id, envelope.type)
            return False
        # A concurrent duplicate fails on the primary key at commit and is redelivered, then skipped.
        appends.append(session, self.model, event_id=envelope.id, event_type=envelope.type, processed_at=utcnow())
        return True


class PermanentFailure(Exception):
    """Retrying cannot help: the message goes to the dead-letter queue at once (credence_common.bus.reliable_events)."""


class MalformedEvent(PermanentFailure):
    """Not a valid envelope, or not the schema and version this handler reads."""


def read_event(message: dict, payload_model: type[P]) -> ReceivedEvent[P]:
    """Parse a delivered message into its envelope and typed payload."""
    try:
        envelope = EventEnvelope.model_validate(message)
        if envelope.type != payload_model.event_type:
            raise MalformedEvent(f"expected {payload_model.event_type}, got {envelope.type}")
        data = payload_model.model_validate(envelope.data)
    except ValidationError as exc:
        raise MalformedEvent(str(exc)) from None
    return ReceivedEvent[payload_model](envelope=envelope, data=data)


def wait_for_broker(amqp_uri: str, who: str, first_delay: float = 0.5, longest_delay: float = 10.0) -> None:
    """Block until the broker accepts a connection, retrying with backoff: a service started before its
    broker (or during a broker restart) waits instead of crashing into a restart loop."""
    delay = first_delay
    while True:
        try:
            with Connection(amqp_uri, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
            return
        except Exception as exc:
            log.warning("%s: waiting for the broker (%s: %s); next try in %.1f s", who, type(exc).__name__, exc,
                        delay)
            eventlet.sleep(delay)
            delay = min(longest_delay, delay * 2)
