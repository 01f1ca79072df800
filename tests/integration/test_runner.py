"""The process runner refuses production start-up on development secrets, before touching the broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import eventlet
import eventlet.event
import pytest
from nameko.containers import ServiceContainer
from nameko.events import event_handler
from nameko.messaging import QueueConsumer
from nameko.rpc import rpc
from nameko.timer import timer

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    ("gateway/config.yml", "gateway.service:GatewayService", "JWT_SECRET"),
    ("services/payments/config.yml", "services.payments.service:PaymentsService", "PAYMENT_SANDBOX_SIGNING_KEY"),
    ("services/identity/config.yml", "services.identity.service:IdentityService", "BOOTSTRAP_STAFF_PASSWORD"),
]


def run_runner(config: str, service: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("JWT_SECRET", "PAYMENT_SANDBOX_SIGNING_KEY", "BOOTSTRAP_STAFF_PASSWORD")}
    environment.update(env)
    # An unreachable broker: if the guard did not refuse, start-up would fail differently (and slowly).
    environment["AMQP_URI"] = "pyamqp://guest:guest@127.0.0.1:1/"
    return subprocess.run([sys.executable, "-m", "credence_common.runtime.runner", config, service], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("config", "service", "secret"), CASES)
def test_production_refuses_development_secrets_and_names_them(config, service, secret):
    result = run_runner(config, service, CREDENCE_ENV="production")
    assert result.returncode == 3
    assert secret in result.stderr and "CREDENCE_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr



class StopProbe:
    """Two consumers on one queue consumer, as every service has (its RPC consumer and event handlers)."""

    name = "stop_probe"

    @rpc
    def ping(self) -> str:
        return "pong"

    @event_handler("nowhere", "nothing_happened")
    def on_nothing(self, payload) -> None:
        pass


def test_a_service_stopped_while_its_consumer_is_still_starting_stops_at_once():
    """nameko 2.14.1 fails such a stop with "Trying to re-send() an already-triggered event" and the process hangs
    until its grace period kills it (credence_common/runtime/nameko_fixes.py, applied by tests/conftest.py as by
    the runner)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: the consumer keeps trying to connect, never ready
    container = ServiceContainer(StopProbe, {"AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:{port}/"})
    starting = eventlet.spawn(container.start)
    consumer = next(extension for extension in container.subextensions if isinstance(extension, QueueConsumer))
    with eventlet.Timeout(30):
        while not (consumer._gt is not None and not consumer._consumers_ready.ready()):
            eventlet.sleep(0.01)  # until its consumer thread runs and is not ready
    began = time.monotonic()
    with eventlet.Timeout(10):
        container.stop()  # raised AssertionError before the fix
        starting.wait()
    assert time.monotonic() - began < 5


class SlowStopProbe(StopProbe):
    """With a timer worker that holds the stop (the container waits for its workers before its queue consumer)."""

    name = "slow_stop_probe"
    started = eventlet.event.Event()
    finish = eventlet.event.Event()

    @timer(interval=3600, eager=True)
    def busy(self) -> None:
        SlowStopProbe.started.send()
        SlowStopProbe.finish.wait()


def test_a_broker_that_answers_while_a_starting_service_stops_does_not_hold_the_stop(rabbit_config):
    from tests.faults.proxy import FaultProxy

    broker_port = int(rabbit_config["AMQP_URI"].rsplit(":", 1)[1].split("/")[0])
    proxy = FaultProxy(broker_port)
    proxy.start_refusing()
    try:
        config = dict(rabbit_config, AMQP_URI=rabbit_config["AMQP_URI"].replace(f":{broker_port}/", f":{proxy.port}/"))
        container = ServiceContainer(SlowStopProbe, config)
        starting = eventlet.spawn(container.start)
        consumer = next(extension for extension in container.subextensions
                        if isinstance(extension, QueueConsumer))
        with eventlet.Timeout(30):
            SlowStopProbe.started.wait()
        stopping = eventlet.spawn(container.stop)
        with eventlet.Timeout(30):
            while not consumer._last_provider_unregistered.ready():  # the entrypoints have left
                eventlet.sleep(0.01)
        proxy.stop_refusing()  # the broker answers while the container waits for its timer worker
        with eventlet.Timeout(60):
            consumer._consumers_ready.wait()
        assert not consumer._consumers  # nothing is consumed for the providers that left
        SlowStopProbe.finish.send()
        began = time.monotonic()
        with eventlet.Timeout(15):
            stopping.wait()
            starting.wait()
        assert time.monotonic() - began < 10
    finally:
        proxy.close()
