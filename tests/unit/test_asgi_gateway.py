"""The asyncio gateway's pieces that need no broker: its batcher keeps the eventlet batcher's rule, and its
Starlette routes reach, for every path, the route werkzeug (the nameko binding) would reach."""

from __future__ import annotations

import asyncio
import re

import pytest
from starlette.routing import Match

from gateway.batching import AsyncBatcher
from tests.integration.conftest import TEST_ACTOR_SIGNING_KEY


class Echo:
    """A batch round trip: answers each item times ten once the test releases it."""

    def __init__(self, fail_on=None):
        self.fail_on = fail_on
        self.batches: list[list] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
            if self.fail_on is not None and self.fail_on in items:
                raise ValueError("the service refused the batch")
            return [item * 10 for item in items]
        finally:
            self.in_flight -= 1


def test_a_lone_call_goes_at_once_and_alone():
    async def lone():
        send = Echo()
        send.release.set()
        return await AsyncBatcher().submit(7, send), send.batches

    assert asyncio.run(lone()) == (70, [[7]])


def test_calls_that_arrive_while_batches_are_out_share_the_next_round_trip():
    async def burst():
        batcher, send = AsyncBatcher(max_batch=8, max_in_flight=2), Echo()
        calls = [asyncio.create_task(batcher.submit(item, send)) for item in range(20)]
        while len(send.batches) < 2:  # the loop runs the calls, then the two round trips they started
            await asyncio.sleep(0)
        assert send.batches == [[0], [1]]  # the first two went at once, alone; the other 18 wait for a slot
        send.release.set()
        return await asyncio.gather(*calls), send, batcher

    answers, send, batcher = asyncio.run(burst())
    assert answers == [item * 10 for item in range(20)]
    assert send.most_in_flight <= 2 and all(len(batch) <= 8 for batch in send.batches)
    assert sorted(item for batch in send.batches for item in batch) == list(range(20))
    assert batcher.items_sent == 20 and batcher.batches_sent == len(send.batches) < 20


def test_a_failed_batch_fails_its_callers_only_and_frees_its_slot():
    async def failing():
        batcher, send = AsyncBatcher(max_batch=8, max_in_flight=1), Echo(fail_on=0)
        first = asyncio.create_task(batcher.submit(0, send))
        while not send.batches:
            await asyncio.sleep(0)
        rest = [asyncio.create_task(batcher.submit(item, send)) for item in (1, 2)]
        send.release.set()
        with pytest.raises(ValueError):
            await first
        return await asyncio.gather(*rest), await batcher.submit(3, send)

    assert asyncio.run(failing()) == ([10, 20], 30)


@pytest.fixture
def app(monkeypatch):
    monkeypatch.setenv("CREDENCE_ENV", "development")
    from gateway.asgi import create_app

    return create_app({"JWT_SECRET": "unit-jwt-secret", "ACTOR_SIGNING_KEY": TEST_ACTOR_SIGNING_KEY,
                       "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/"})


def test_every_path_reaches_the_route_werkzeug_would_choose(app):
    gateway = app.state.edge.gateway
    adapter = gateway.route_map.bind("gateway")
    checked = 0
    for rule in gateway.route_map.iter_rules():
        path = re.sub(r"<[^>]+>", "public-key", rule.rule)  # a parameter spelled like a fixed segment elsewhere
        for method in rule.methods - {"HEAD"}:
            expected, _values = adapter.match(path, method=method)
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            chosen = next(route for route in app.router.routes if route.matches(scope)[0] is Match.FULL)
            assert chosen.path == expected.replace("<", "{").replace(">", "}"), (method, path)
            checked += 1
    assert checked == len(list(gateway.route_map.iter_rules()))


def test_gateway_server_chooses_the_gateways_command_and_nothing_else():
    from deploy.processes import BY_NAME

    gateway = BY_NAME["gateway"]
    assert gateway.command(python="python") == ["python", "-m", "gateway.asgi", "gateway/config.yml"]  # the default
    assert gateway.command(python="python", server="nameko") == [
        "python", "-m", "credence_common.runtime.runner", "gateway/config.yml", "gateway.service:GatewayService"]
    identity = BY_NAME["identity"]
    assert identity.command(python="python", server="asgi")[:3] == ["python", "-m", "credence_common.runtime.runner"]
    with pytest.raises(ValueError, match="GATEWAY_SERVER"):
        gateway.command(server="twisted")


def test_the_static_route_table_picks_what_starlettes_scan_picks(app):
    from gateway.asgi import StaticRoutesFirst

    fast = app.router.middleware_stack
    assert isinstance(fast, StaticRoutesFirst) and ("/api/v1/me/results", "GET") in fast.table
    for (path, method), route in fast.table.items():
        scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        assert route is next(r for r in app.router.routes if r.matches(scope)[0] is Match.FULL), (method, path)
    # a path with a parameter, or no route at all, is left to the scan
    assert ("/api/v1/certificates/by-number/{certificate_number}", "GET") not in fast.table
