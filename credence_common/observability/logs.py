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
import sys
import time

from nameko.extensions import DependencyProvider

# the correlation id lives with the contracts (it crosses the bus); re-exported here, where the logs print it
from credence_common.contracts.correlation import (  # noqa: E402,F401
    CONTEXT_KEY,
    ENVELOPE_ATTRIBUTE,
    HEADER,
    correlation_id_of_event,
    correlation_scope,
    current_correlation_id,
    new_correlation_id,
    sane,
    set_correlation_id,
)


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
