"""The one way an event handler applies an event: parse, deduplicate, apply, all in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from credence_common.events import EventPayload
from credence_common.messaging import Inbox, read_event
from credence_common.metrics import EVENTS_DUPLICATE

log = logging.getLogger(__name__)


def consume(service, message: dict, payload_model: type[EventPayload], processed_model,
            effect: Callable[[Session, EventPayload], None]) -> bool:
    """Apply ``effect`` once per event id. Returns False for a duplicate.

    A malformed message raises ``MalformedEvent`` (a ``PermanentFailure``): the reliable handler moves it to
    the dead-letter queue at once, since retrying cannot fix it. Any other failure raises too, and the
    handler retries later with backoff; nothing was committed, so the retry starts from the state as it was.
    """
    event = read_event(message, payload_model)
    with service.db.transaction() as session:
        if not Inbox(processed_model).first_delivery(session, event.envelope):
            EVENTS_DUPLICATE.labels(service.name, event.envelope.type).inc()
            return False
        effect(session, event.data)
    return True
