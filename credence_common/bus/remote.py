"""RPC to another service with a deadline: nameko's service-to-service ``RpcProxy`` would wait forever."""

from __future__ import annotations

import eventlet
from kombu.exceptions import OperationalError
from nameko.exceptions import UnknownService

import credence_common.bus.error_registry  # noqa: F401  (refusals come back as their own class)
from credence_common.contracts.errors import ServiceUnavailable


def call_with_deadline(proxy, service: str, method: str, *args, timeout: float):
    """``proxy``: a nameko ``RpcProxy`` dependency for ``service``. A service that is down or too slow becomes
    a 503 with a clear error instead of a hang."""
    timer = eventlet.Timeout(timeout)
    try:
        return getattr(proxy, method)(*args)
    except UnknownService:
        raise ServiceUnavailable("service_unavailable",
                                 f"The {service} service is not running; try again shortly.") from None
    except eventlet.Timeout as exc:
        if exc is not timer:
            raise
        raise ServiceUnavailable("service_timeout",
                                 f"The {service} service did not answer in time; try again shortly.") from None
    except (OperationalError, ConnectionError) as exc:  # the broker is restarting or unreachable
        raise ServiceUnavailable("broker_unavailable", "The platform's message broker cannot be reached right "
                                                       "now; try again shortly.") from exc
    finally:
        timer.cancel()
