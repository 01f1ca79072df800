"""nameko entrypoints with Credence's conventions.

``rpc``: a typed ``CredenceError`` is an expected outcome (the caller gets it back as the same class),
so nameko logs it as a one-line warning instead of an error with a traceback.
"""

from __future__ import annotations

import logging

from nameko.rpc import rpc as nameko_rpc

from credence_common.errors import CredenceError


def rpc(fn=None, **kwargs):
    kwargs.setdefault("expected_exceptions", CredenceError)
    if fn is None:
        return nameko_rpc(**kwargs)
    return nameko_rpc(**kwargs)(fn)


class ExpectedErrorFilter(logging.Filter):
    """Drops the traceback nameko attaches to expected errors: a refusal is not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("(expected)"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install_log_filters() -> None:
    logging.getLogger("nameko.containers").addFilter(ExpectedErrorFilter())


class HealthCheck:
    """Mixed into every service: ``health`` answers once the service consumes its RPC queue, which
    is what "started" means to a caller (the launcher and the gateway's /ready use it)."""

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}
