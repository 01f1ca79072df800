"""The event envelope (CloudEvents 1.0 attributes) and the base of every event payload.

Event types are versioned names such as ``credence.certificate.issued.v1``. A payload's fields may
gain optional members within a version; removing or changing a field means a new version.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from credence_common.contracts.correlation import ENVELOPE_ATTRIBUTE, current_correlation_id, new_correlation_id

SPEC_VERSION = "1.0"


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventPayload(BaseModel):
    """Base of every event's ``data``. Subclasses set ``event_type`` and ``publisher``.

    Tolerant reader: unknown fields are ignored, so a consumer keeps working when a later release
    adds an optional field within the same version."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    publisher: ClassVar[str]
    description: ClassVar[str] = ""


class EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = SPEC_VERSION
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: datetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any]


P = TypeVar("P", bound=EventPayload)


class ReceivedEvent(BaseModel, Generic[P]):
    envelope: EventEnvelope
    data: P


def source_for(service_name: str) -> str:
    return f"/credence/{service_name}"


def make_envelope(payload: EventPayload, subject: str | None = None) -> EventEnvelope:
    # the request (or timer run) that caused the event, so its consumers' log lines can be found with it: an
    # extension attribute, allowed by the envelope's extra="allow"
    extensions: dict[str, Any] = {ENVELOPE_ATTRIBUTE: current_correlation_id() or new_correlation_id()}
    return EventEnvelope(
        source=source_for(payload.publisher),
        type=payload.event_type,
        subject=subject,
        data=payload.model_dump(mode="json"),
        **extensions,
    )


def exchange_name(publisher: str) -> str:
    """nameko's convention: events of service ``x`` go to the topic exchange ``x.events``."""
    return f"{publisher}.events"
