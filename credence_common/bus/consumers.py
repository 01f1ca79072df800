"""The one way an event handler applies an event: parse, deduplicate, apply, all in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from credence_common.contracts.envelope import EventPayload, P
from credence_common.observability.logs import correlation_id_of_event, correlation_scope, current_correlation_id
from credence_common.observability.metrics import EVENTS_DUPLICATE
from credence_common.persistence import appends
from credence_common.persistence.messaging import Inbox, read_event

log = logging.getLogger(__name__)


def consume(service, message: dict, payload_model: type[P], processed_model,
            effect: Callable[[Session, P], None]) -> bool:
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


def consume_batch(service, messages: list[dict], payload_model: type[EventPayload], processed_model,
                  effect: Callable[..., None], pass_message: bool = False,
                  prepare: Callable[[Session, list], object] | None = None) -> int:
    """``consume`` for many messages in one transaction (``@reliable_event_handler(batch_size=N)``): each event is
    applied once, in the order it arrived, and they commit together. Returns how many were applied.

    A malformed message, or any failure, fails the whole batch; the handler then tries each message on its
    own, so only the one at fault is retried or dead-lettered. ``pass_message``: the effect also gets the raw
    message (``effect(session, data, message=...)``). ``prepare(session, payloads)`` runs first, in the same
    transaction, with the payloads about to be applied (to lock or load their rows in one query); what it returns
    is handed to every effect of the batch as ``batch=`` (``effect(session, data, batch=...)``), so what an effect
    depends on is in its signature, not kept in the session."""
    from sqlalchemy import select

    from credence_common.contracts.envelope import utcnow

    events = [(read_event(message, payload_model), message) for message in messages]
    unique: dict[str, tuple] = {}
    for event, message in events:
        unique.setdefault(event.envelope.id, (event, message))
    with service.db.transaction() as session:
        seen = set(session.scalars(select(processed_model.event_id)
                                   .where(processed_model.event_id.in_(sorted(unique)))))
        fresh = [(event_id, event, message) for event_id, (event, message) in unique.items() if event_id not in seen]
        extra: dict = {}
        if prepare is not None and fresh:
            extra["batch"] = prepare(session, [event.data for _event_id, event, _message in fresh])
        applied = 0
        for event_id, event, message in fresh:
            appends.append(session, processed_model, event_id=event_id, event_type=event.envelope.type,
                           processed_at=utcnow())
            # the events this one causes carry its correlation id, not the batch's first
            with correlation_scope(correlation_id_of_event(message) or current_correlation_id()):
                if pass_message:
                    effect(session, event.data, message=message, **extra)
                else:
                    effect(session, event.data, **extra)
            applied += 1
    duplicates = len(events) - applied
    if duplicates:
        EVENTS_DUPLICATE.labels(service.name, payload_model.event_type).inc(duplicates)
    return applied
