"""The subscription table against the ``@event_handler`` entrypoints of the services, both ways."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from nameko.containers import ServiceContainer
from nameko.events import SERVICE_POOL, EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from credence_common.bus.reliable_events import ReliableEventHandler
from credence_common.contracts.events import ALL_EVENTS
from credence_common.contracts.topology import SUBSCRIPTIONS, subscribers_of, subscriptions_published_by

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = sorted(p.parent.name for p in ROOT.glob("services/*/service.py"))


def service_class(name: str):
    module = importlib.import_module(f"services.{name}.service")
    return getattr(module, f"{name.capitalize()}Service")


def all_service_classes():
    classes = [service_class(name) for name in SERVICE_NAMES]
    gateway = importlib.import_module("gateway.service")
    classes += [obj for _, obj in inspect.getmembers(gateway, inspect.isclass)
                if obj.__module__ == gateway.__name__ and isinstance(getattr(obj, "name", None), str)]
    return classes


def event_handlers(cls) -> dict[str, list[EventHandler]]:
    found = {}
    for method_name, method in inspect.getmembers(cls, inspect.isfunction):
        handlers = [ep for ep in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()) if isinstance(ep, EventHandler)]
        if handlers:
            found[method_name] = handlers
    return found


def test_the_services_are_found():
    assert set(SERVICE_NAMES) == {"identity", "scoring", "certificates", "payments", "verification"}
    assert any(cls.name == "gateway" for cls in all_service_classes())


@pytest.mark.parametrize("sub", SUBSCRIPTIONS, ids=lambda s: f"{s.consumer}.{s.handler}")
def test_each_subscription_has_its_event_handler(sub):
    cls = service_class(sub.consumer)
    assert cls.name == sub.consumer
    handlers = event_handlers(cls).get(sub.handler)
    assert handlers, f"{cls.__name__}.{sub.handler} is not an @event_handler"
    assert len(handlers) == 1
    handler = handlers[0]
    assert (handler.source_service, handler.event_type) == (sub.publisher, sub.event.event_type)
    assert handler.handler_type == SERVICE_POOL
    # retried with backoff, then dead-lettered: never dropped, never looping (credence_common/bus/reliable_events.py)
    assert isinstance(handler, ReliableEventHandler)


def test_every_event_handler_is_in_the_table():
    table = {(s.consumer, s.handler, s.publisher, s.event.event_type) for s in SUBSCRIPTIONS}
    found = set()
    for cls in all_service_classes():
        for method_name, handlers in event_handlers(cls).items():
            for handler in handlers:
                found.add((cls.name, method_name, handler.source_service, handler.event_type))
    assert found == table


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_queue_names_are_the_ones_nameko_consumes_from(name):
    """Bind the entrypoints as nameko does (no broker is touched) and compare the queue names."""
    cls = service_class(name)
    container = ServiceContainer(cls, {"AMQP_URI": "memory://"})
    actual = {}
    for entrypoint in container.entrypoints:
        if isinstance(entrypoint, EventHandler):
            entrypoint.setup()
            actual[entrypoint.method_name] = entrypoint.queue.name
    expected = {s.handler: s.queue_name for s in SUBSCRIPTIONS if s.consumer == name}
    assert actual == expected


@pytest.mark.parametrize("sub", SUBSCRIPTIONS, ids=lambda s: f"{s.consumer}.{s.handler}")
def test_queue_name_format(sub):
    assert sub.queue_name == f"evt-{sub.event.publisher}-{sub.event.event_type}--{sub.consumer}.{sub.handler}"


def test_subscriptions_are_unique_and_only_for_contract_events():
    assert len({s.queue_name for s in SUBSCRIPTIONS}) == len(SUBSCRIPTIONS)
    assert all(s.event in ALL_EVENTS for s in SUBSCRIPTIONS)
    assert all(s.consumer != s.publisher for s in SUBSCRIPTIONS)


def test_lookup_helpers():
    for sub in SUBSCRIPTIONS:
        assert sub in subscriptions_published_by(sub.publisher)
        assert sub in subscribers_of(sub.event.event_type)
    assert subscriptions_published_by("nobody") == []
    assert subscribers_of("credence.nothing.happened.v1") == []
    total = sum(len(subscriptions_published_by(name)) for name in SERVICE_NAMES)
    assert total == len(SUBSCRIPTIONS)
