"""The platform's processes: one per service plus the gateway. ``make run``, docker-compose and the
end-to-end tests all start exactly these (a test checks docker-compose.yml against this table)."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    config: str
    service_class: str
    metrics_port_env: str | None
    default_metrics_port: int | None
    db_env: str | None
    # the module that serves this process on asyncio instead of nameko (the gateway only; GATEWAY_SERVER=asgi,
    # the default)
    asgi_module: str | None = None

    def command(self, python: str = sys.executable, server: str | None = None) -> list[str]:
        server = server or DEFAULT_GATEWAY_SERVER
        if server not in GATEWAY_SERVERS:
            raise ValueError(f"GATEWAY_SERVER must be one of {', '.join(GATEWAY_SERVERS)}, not {server!r}")
        if server == "asgi" and self.asgi_module is not None:
            return [python, "-m", self.asgi_module, self.config]
        return [python, "-m", "credence_common.runtime.runner", self.config, self.service_class]


# GATEWAY_SERVER: which HTTP layer serves the gateway. asgi (uvicorn + Starlette, gateway/asgi.py) by default: of
# the two it is the one that meets the result-reading and slow-client targets (docs/performance.md). nameko
# (@http on eventlet, gateway/service.py) is kept, and tested on every run, as the way back.
GATEWAY_SERVERS = ("nameko", "asgi")
DEFAULT_GATEWAY_SERVER = "asgi"


SERVICE_NAMES = ("identity", "scoring", "certificates", "payments", "verification")

PROCESSES: tuple[ProcessSpec, ...] = tuple(
    ProcessSpec(
        name=name,
        config=f"services/{name}/config.yml",
        service_class=f"services.{name}.service:{name.capitalize()}Service",
        metrics_port_env=f"{name.upper()}_METRICS_PORT",
        default_metrics_port=9101 + index,
        db_env=f"{name.upper()}_DB_URI",
    )
    for index, name in enumerate(SERVICE_NAMES)
) + (
    ProcessSpec(name="gateway", config="gateway/config.yml", service_class="gateway.service:GatewayService",
                # metrics on a port of their own, never on the public API port
                metrics_port_env="GATEWAY_METRICS_PORT", default_metrics_port=9106, db_env=None,
                asgi_module="gateway.asgi"),
)

BY_NAME = {spec.name: spec for spec in PROCESSES}
