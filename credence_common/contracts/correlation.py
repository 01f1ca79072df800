"""The correlation id: one id for all the work one request or event causes, across services, in every log line
and every event envelope it leads to. Part of the contracts: it crosses the bus in the AMQP header
``nameko.correlation_id`` and the CloudEvents attribute ``correlationid`` (docs/events.md); the structured logs
(credence_common/observability/logs.py) print it."""

from __future__ import annotations

import re
import threading
import uuid

HEADER = "X-Request-Id"
CONTEXT_KEY = "correlation_id"  # in nameko's context data, hence the AMQP header "nameko.correlation_id"
ENVELOPE_ATTRIBUTE = "correlationid"  # CloudEvents extension attributes are lower-case alphanumerics

# What a caller may choose: enough for a UUID, a trace id or a load balancer's request id, and nothing that
# could break a log line or smuggle personal data in at length.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# Green-thread local once eventlet has monkey-patched threading: each nameko worker has its own.
_current = threading.local()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def sane(value: object) -> str | None:
    return value if isinstance(value, str) and _SANE.fullmatch(value) else None


def current_correlation_id() -> str | None:
    return getattr(_current, "value", None)


def set_correlation_id(value: str | None) -> None:
    _current.value = value


class correlation_scope:  # noqa: N801 - used like a function: ``with correlation_scope(id):``
    """Within the block, log lines and new events carry ``correlation_id`` (a new one when None)."""

    def __init__(self, correlation_id: str | None = None):
        self.correlation_id = sane(correlation_id) or new_correlation_id()

    def __enter__(self) -> str:
        self._previous = current_correlation_id()
        set_correlation_id(self.correlation_id)
        return self.correlation_id

    def __exit__(self, *exc: object) -> None:
        set_correlation_id(self._previous)


def correlation_id_of_event(body: object) -> str | None:
    """The id an event (or the first of a batch of events) carries in its envelope."""
    if isinstance(body, list):
        body = body[0] if body else None
    return sane(body.get(ENVELOPE_ATTRIBUTE)) if isinstance(body, dict) else None
