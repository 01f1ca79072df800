"""gateway/amqp_rpc.py, the asyncio gateway's client of nameko's RPC, against a real nameko service on real
RabbitMQ: what the service sees of a call (its context headers), the answers and refusals it gets back, its
deadline, a service that is not running, and a broker connection that drops."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote, urlsplit

import pytest
import requests
from eventlet.event import Event
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc

from credence_common.contracts.errors import Conflict, ServiceUnavailable
from gateway.amqp_rpc import RpcClient, amqp_url
from tests.integration.conftest import wait_for

MANAGEMENT = os.environ.get("RABBIT_CTL_URI", "http://guest:guest@127.0.0.1:15672").rstrip("/")


class WorkerContext(DependencyProvider):
    """The worker's context: its ``context_data`` is what the call's headers carried."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class RecordingService:
    name = "recording"
    worker_ctx = WorkerContext()
    release = Event()  # the slow method answers once a test sends this (a fresh one per test: see the fixture)

    @rpc
    def context_seen(self, *args):
        return {"args": list(args), "context": dict(self.worker_ctx.context_data)}

    @rpc
    def refuse(self):
        raise Conflict("already_done", "It was done before.", [{"field": "x", "message": "y"}])

    @rpc
    def crash(self):
        raise ValueError("a bug")

    @rpc
    def slow(self):
        RecordingService.release.wait()
        return "late"


def run(coroutine_function, amqp_uri: str, **client_options):
    """Runs ``coroutine_function(client)`` with a started client, on an event loop of its own."""

    async def scenario():
        client = RpcClient(amqp_uri, **client_options)
        await client.start()
        try:
            return await coroutine_function(client)
        finally:
            await client.close()

    return asyncio.run(scenario())


@pytest.fixture
def amqp_uri(container_factory, rabbit_config):
    RecordingService.release = Event()
    container_factory(RecordingService, rabbit_config).start()
    return rabbit_config["AMQP_URI"]


def test_the_service_gets_the_arguments_and_the_context_headers_nameko_would_send(amqp_uri):
    context = {"correlation_id": "req-42", "idempotency_record": "r" * 64, "ignored": None}
    answer = run(lambda client: client.call("recording", "context_seen", 1, "二", {"k": [1]}, context=context,
                                            timeout=10), amqp_uri)
    assert answer["args"] == [1, "二", {"k": [1]}]
    seen = answer["context"]
    assert seen["correlation_id"] == "req-42" and seen["idempotency_record"] == "r" * 64
    assert "ignored" not in seen  # a None value is dropped, as nameko's HeaderEncoder drops it
    # the service's own call id follows the gateway's on the call id stack, as after a nameko proxy's call
    caller, callee = seen["call_id_stack"]
    assert caller.startswith("gateway.context_seen.") and callee.startswith("recording.context_seen.")


def test_a_refusal_comes_back_as_its_class_and_a_crash_as_a_remote_error(amqp_uri):
    async def both(client):
        outcomes = []
        for method in ("refuse", "crash"):
            try:
                await client.call("recording", method, timeout=10)
            except Exception as error:
                outcomes.append(error)
        return outcomes

    refusal, crash = run(both, amqp_uri)
    assert isinstance(refusal, Conflict) and refusal.code == "already_done"
    assert refusal.details == [{"field": "x", "message": "y"}]
    assert isinstance(crash, RemoteError) and crash.exc_type == "ValueError"


def test_a_call_past_its_deadline_is_service_timeout_and_its_late_answer_is_dropped(amqp_uri):
    async def late(client):
        with pytest.raises(ServiceUnavailable) as timed_out:
            await client.call("recording", "slow", timeout=0.5)
        RecordingService.release.send()  # the late answer now arrives for nobody; the next call still gets its own
        return timed_out.value.code, await client.call("recording", "context_seen", "next", timeout=10)

    code, answer = run(late, amqp_uri)
    assert code == "service_timeout" and answer["args"] == ["next"]


def test_a_service_nobody_runs_is_service_unavailable_at_once(amqp_uri):
    async def absent(client):
        with pytest.raises(ServiceUnavailable) as refused:
            await client.call("nobody", "health", timeout=30)
        return refused.value.code

    assert run(absent, amqp_uri) == "service_unavailable"


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])  # RPC_QUEUE_TYPE's two (rpc_queue.py)
def test_a_call_nobody_takes_before_its_deadline_is_dropped_by_the_broker(amqp_uri, queue_type):
    """A service whose queue exists but which consumes nothing (stopped, or swamped): the call waits in its queue
    while its caller waits, is answered ``service_timeout`` at its deadline, and the broker then drops it (its
    ``expiration``) instead of keeping it for the service to run when it comes back, with nobody waiting."""
    from kombu import Connection, Exchange, Queue

    def depth() -> int:
        with Connection(amqp_uri) as connection:
            return connection.channel().queue_declare("rpc-stopped", passive=True).message_count

    with Connection(amqp_uri) as connection:
        Queue("rpc-stopped", Exchange("nameko-rpc", type="topic", durable=True), routing_key="stopped.*",
              durable=True, queue_arguments={"x-queue-type": queue_type})(connection.channel()).declare()

    async def unanswered(client):
        call = asyncio.ensure_future(client.call("stopped", "record", timeout=2.0))
        while await asyncio.to_thread(depth) != 1:  # held while its caller waits (not dropped at once)
            assert not call.done(), "the call ended before it was seen waiting in the queue"
            await asyncio.sleep(0.02)
        with pytest.raises(ServiceUnavailable) as timed_out:
            await call
        return timed_out.value.code

    assert run(unanswered, amqp_uri) == "service_timeout"
    wait_for(lambda: depth() == 0, what="the expired call dropped from the stopped service's queue")


def vhost_of(amqp_uri: str) -> str:
    return urlsplit(amqp_url(amqp_uri)).path[1:] or "/"


def test_calls_go_on_after_the_broker_drops_the_connection(amqp_uri):
    vhost = vhost_of(amqp_uri)

    def client_connections() -> list[str]:
        listed = requests.get(f"{MANAGEMENT}/api/vhosts/{quote(vhost, safe='')}/connections", timeout=10).json()
        return [c["name"] for c in listed
                if (c.get("client_properties") or {}).get("connection_name") == "gateway rpc client"]

    async def across_a_drop(client):
        first = await client.call("recording", "context_seen", "before", timeout=10)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not client_connections():  # the management API lists a connection a few seconds late
            assert loop.time() < deadline, "the client's connection never showed in the management API"
            await asyncio.sleep(0.5)
        for name in client_connections():
            requests.delete(f"{MANAGEMENT}/api/connections/{quote(name, safe='')}", timeout=10)
        deadline = loop.time() + 60
        while True:  # the robust connection reconnects (aio-pika waits 5 s) and declares its reply queue again
            try:
                return first, await client.call("recording", "context_seen", "after", timeout=5)
            except ServiceUnavailable:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    first, after = run(across_a_drop, amqp_uri)
    assert first["args"] == ["before"] and after["args"] == ["after"]


def test_a_cluster_uri_whose_first_node_is_down_connects_to_the_next(amqp_uri):
    # AMQP_URI naming several nodes (docs/operations.md "Running on a RabbitMQ cluster"): nothing listens on port
    # 1, so the client goes on to the next node, the real broker
    parts = urlsplit(amqp_uri)
    dead = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:1").geturl()
    answer = run(lambda client: client.call("recording", "context_seen", "via the second node", timeout=10),
                 f"{dead};{amqp_uri}")
    assert answer["args"] == ["via the second node"]
