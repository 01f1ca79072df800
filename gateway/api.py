"""The HTTP API as data: one ``Route`` per endpoint (gateway/routing.py), its roles, its request and response
models and its handler, mostly a declared forward to a service (``Rpc``), in one table per service
(gateway/routes/). Both HTTP bindings (``asgi.py``, ``service.py``), the OpenAPI document (``openapi.py``) and
docs/access.md are generated from ``ROUTES``, so they cannot disagree."""

from __future__ import annotations

from gateway.routes import certificates, identity, payments, scoring, verification
from gateway.routing import Call, Route, dump

__all__ = ["ROUTES", "Call", "Route", "dump", "mounted_routes"]

ROUTES: tuple[Route, ...] = (*identity.ROUTES, *scoring.ROUTES, *certificates.ROUTES, *payments.ROUTES,
                             *verification.ROUTES)


def mounted_routes(environment: str) -> tuple[Route, ...]:
    """The routes a gateway in ``environment`` serves and documents: development-only ones only in development."""
    return tuple(route for route in ROUTES if environment == "development" or not route.development_only)
