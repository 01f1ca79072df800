"""Structured logs: one JSON object per line, each carrying the correlation id of the work it belongs to.

A correlation id is born at the gateway (the caller's ``X-Request-Id`` when it is a sane token, else a new one)
and answered back in the response's ``X-Request-Id``. It travels in nameko's context headers with every RPC,
and inside every event's envelope (the CloudEvents extension attribute ``correlationid``), so that one search
for it finds the gateway's line, the services' lines and the lines of every consumer of the events the request
caused. A timer's run, or a CLI command, starts an id of its own.

    {"time": "2026-12-02T11:52:03.114Z", "level": "INFO", "service": "certificates",
     "logger": "services.certificates.usecases", "message": "...", "correlation_id": "5f0c..."}

``LOG_FORMAT=text`` gives the one-line human format instead (``make run`` on a terminal, if preferred).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import uuid

from nameko.extensions import DependencyProvider

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


def sane(value) -> str | None:
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

    def __exit__(self, *exc) -> None:
        set_correlation_id(self._previous)


def correlation_id_of_event(body) -> str | None:
    """The id an event (or the first of a batch of events) carries in its envelope."""
    if isinstance(body, list):
        body = body[0] if body else None
    return sane(body.get(ENVELOPE_ATTRIBUTE)) if isinstance(body, dict) else None


class CorrelationContext(DependencyProvider):
    """Every worker of the service runs under one correlation id: the one its RPC's headers carry, else the
    one in the event it handles, else a new one (a timer). It is put back into the worker's context data, so
    every RPC the worker makes passes it on."""

    def worker_setup(self, worker_ctx):
        correlation_id = sane(worker_ctx.context_data.get(CONTEXT_KEY))
        if correlation_id is None and worker_ctx.args:
            correlation_id = correlation_id_of_event(worker_ctx.args[0])
        correlation_id = correlation_id or new_correlation_id()
        worker_ctx.context_data[CONTEXT_KEY] = correlation_id
        set_correlation_id(correlation_id)

    def worker_teardown(self, worker_ctx):
        set_correlation_id(None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation_id = current_correlation_id()
        if correlation_id:
            line[CONTEXT_KEY] = correlation_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        correlation_id = current_correlation_id()
        return f"{text} [{correlation_id}]" if correlation_id else text


def log_format(config: dict | None = None) -> str:
    chosen = str(os.environ.get("LOG_FORMAT") or (config or {}).get("LOG_FORMAT") or "json").lower()
    if chosen not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {chosen!r}")
    return chosen


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """The process's root logger writes to stderr in ``fmt``; replaces whatever was configured before."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings and a crash's traceback would otherwise go to stderr as bare text, breaking the
    # one-JSON-object-per-line promise that log collectors rely on.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type, exc, traceback) -> None:
    logging.getLogger("credence.crash").critical("uncaught %s: %s", exc_type.__name__, exc,
                                                 exc_info=(exc_type, exc, traceback))


def read_json_log(text: str) -> list[dict]:
    """The records of a JSON log (for tests and tools); a line that is not JSON (a crash's stderr) becomes
    ``{"message": line}`` so that nothing is hidden."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        records.append(record if isinstance(record, dict) else {"message": line})
    return records
