"""The gateway's HTTP layer, on both bindings: the nameko one (gateway/http_server.py in a real nameko
container) and the asyncio one (gateway/asgi.py, uvicorn, as its own process as make run starts it). Read
deadlines, the body read before a worker is taken, keep-alive, the bounded connection pool. Raw sockets, so that
what is sent (and not sent) is exact. No service behind it (the routes used here answer without one), except in
the RPC deadline tests at the end: a stand-in service that takes a call and never answers, behind the gateway and
behind another service (docs/reliability.md, "No request hangs")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import eventlet
import pytest
import requests
from eventlet.event import Event
from nameko.rpc import rpc

from credence_common.contracts.errors import ServiceUnavailable
from deploy.platform import REPO_ROOT, free_port, wait_for_port
from gateway.service import GatewayService
from services.verification.service import VerificationService
from tests.integration.conftest import TEST_ACTOR_SIGNING_KEY, query, rpc_proxy, signed_actor, wait_for

DEADLINE_SECONDS = 1.0
MARGIN_SECONDS = 5.0  # scheduling on a loaded test machine
STARTUP_SECONDS = 60.0
HEALTH = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"
# config keys the tests set, and the environment variable gateway/config.yml reads each from
ENV_NAME = {"max_workers": "MAX_WORKERS", "WEB_SERVER_ADDRESS": "GATEWAY_ADDRESS"}


def settings_for(amqp_uri: str, port: int, **settings) -> dict:
    return {"AMQP_URI": amqp_uri, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "JWT_SECRET": "integration-jwt-secret", "ACTOR_SIGNING_KEY": TEST_ACTOR_SIGNING_KEY,
            "RPC_TIMEOUT_SECONDS": 2,
            "GATEWAY_HEADER_DEADLINE_SECONDS": DEADLINE_SECONDS,
            "GATEWAY_BODY_DEADLINE_SECONDS": DEADLINE_SECONDS, **settings}


@pytest.fixture(params=["nameko", "asgi"])
def server(request) -> str:
    return request.param


def start_asgi_gateway(amqp_uri: str, log_path, **settings) -> tuple[tuple[str, int], subprocess.Popen]:
    """``python -m gateway.asgi`` as make run starts it, with ``settings`` in its environment, once it answers."""
    port = free_port()
    config = settings_for(amqp_uri, port, **settings)
    env = {**os.environ, "CREDENCE_ENV": "development", "GATEWAY_METRICS_PORT": "0",
           **{ENV_NAME.get(key, key): str(value) for key, value in config.items()}}
    process = subprocess.Popen([sys.executable, "-m", "gateway.asgi", "gateway/config.yml"], cwd=REPO_ROOT,
                               env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    assert wait_for_port(port, STARTUP_SECONDS, process), "the asgi gateway did not start"
    return ("127.0.0.1", port), process


@pytest.fixture
def start_gateway(server, container_factory, rabbit_config, tmp_path):
    started: list[subprocess.Popen] = []

    def start(**settings) -> tuple[str, int]:
        if server == "nameko":
            port = free_port()
            container_factory(GatewayService, settings_for(rabbit_config["AMQP_URI"], port, **settings)).start()
            return "127.0.0.1", port
        address, process = start_asgi_gateway(rabbit_config["AMQP_URI"], tmp_path / "gateway.log", **settings)
        started.append(process)
        return address

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert status == 0, "a graceful stop is a clean exit"


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer, head and body (a server may send them in separate writes)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, received
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_slow_body_does_not_hold_the_only_worker(start_gateway):
    address = start_gateway(max_workers=1, GATEWAY_BODY_DEADLINE_SECONDS=30)
    slow = socket.create_connection(address, timeout=10)
    slow.sendall(b"POST /api/v1/candidates HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 9\r\n\r\n{not")
    # the body is still coming: the one worker (nameko's, or the asgi gateway's one handler thread) stays free
    health = requests.get(f"http://{address[0]}:{address[1]}/health", timeout=5)
    assert health.status_code == 200
    slow.sendall(b" json")  # the rest arrives: the handler reads the whole body, from memory
    answer = read_answer(slow)
    assert status_of(answer) == 400 and b'"malformed_json"' in answer
    slow.close()


def test_headers_and_body_have_total_deadlines_that_trickling_does_not_push_back(start_gateway):
    address = start_gateway()
    idle = socket.create_connection(address, timeout=10)
    headers = socket.create_connection(address, timeout=10)
    body = socket.create_connection(address, timeout=10)
    opened = time.monotonic()
    body.sendall(b"POST /api/v1/candidates HTTP/1.1\r\nHost: gateway\r\nContent-Length: 1000\r\n\r\n{")
    head = b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"a" * 100
    for byte in range(int(3 * DEADLINE_SECONDS / 0.1)):  # a byte every 0.1 s, for three deadlines' time
        try:
            headers.send(head[byte:byte + 1])
            body.send(b"x")
        except OSError:
            break  # closed by the server
        time.sleep(0.1)
    answers = {name: read_until_closed(sock, timeout=MARGIN_SECONDS)
               for name, sock in (("idle", idle), ("headers", headers), ("body", body))}
    for name, (_, closed_at) in answers.items():
        assert closed_at - opened <= DEADLINE_SECONDS + MARGIN_SECONDS, name
    assert answers["idle"][0] == b""  # an idle connection is just closed: nothing was asked
    for name in ("headers", "body"):  # a half-sent request is told why
        answer = answers[name][0]
        assert status_of(answer) == 408 and b'"request_timeout"' in answer, name
        assert b"connection: close" in answer.lower(), name
    for sock in (idle, headers, body):
        sock.close()


def test_a_kept_alive_connection_serves_request_after_request_and_skips_unread_bodies(start_gateway):
    address = start_gateway()
    sock = socket.create_connection(address, timeout=10)
    # /health reads no body: the server skips it before the next request on the same connection
    sock.sendall(b"POST /api/v1/candidates HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}"
                 + b"GET /health HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\n\r\nhello" + HEALTH)
    received = b""
    while received.count(b"HTTP/1.1 ") < 3:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    statuses = [int(part.split(b" ", 1)[0]) for part in received.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [422, 200, 200]
    sock.close()


def hold_every_slot(address, slots: int) -> list[socket.socket]:
    holders = [socket.create_connection(address, timeout=10) for _ in range(slots)]
    for sock in holders:  # served, then kept alive and idle: each holds one of the slots
        sock.sendall(HEALTH)
        assert status_of(sock.recv(65536)) == 200
    return holders


@pytest.mark.parametrize("server", ["nameko"])  # the asgi gateway answers at once instead (the next test)
def test_connections_beyond_the_pool_wait_for_a_free_slot_on_the_nameko_gateway(start_gateway):
    address = start_gateway(GATEWAY_MAX_CONNECTIONS=2)
    holders = hold_every_slot(address, 2)
    held_from = time.monotonic()
    waiting = socket.create_connection(address, timeout=10)  # waits in the listen backlog
    waiting.sendall(HEALTH)
    answer = waiting.recv(65536)
    # served once a holder, idle past its deadline, was closed and freed its slot
    assert status_of(answer) == 200 and time.monotonic() - held_from >= DEADLINE_SECONDS / 2
    assert [read_until_closed(sock, timeout=MARGIN_SECONDS)[0] for sock in holders] == [b"", b""]
    for sock in holders + [waiting]:
        sock.close()


@pytest.mark.parametrize("server", ["asgi"])  # the nameko gateway makes it wait instead (the previous test)
def test_a_request_beyond_the_pool_is_told_at_once_to_come_back_on_the_asgi_gateway(start_gateway):
    address = start_gateway(GATEWAY_MAX_CONNECTIONS=2, GATEWAY_HEADER_DEADLINE_SECONDS=30)
    holders = hold_every_slot(address, 2)
    extra = socket.create_connection(address, timeout=10)
    asked_at = time.monotonic()
    extra.sendall(HEALTH)
    answer = read_answer(extra)
    # at once (long before any holder's 30 s deadline), in JSON, with when to come back
    assert time.monotonic() - asked_at < MARGIN_SECONDS
    assert status_of(answer) == 503 and b'"service_unavailable"' in answer and b"retry-after: 1" in answer.lower()
    holders[0].close()  # a slot is free again (and the refused connection gone): the next request is served,
    extra.close()  # once the server has seen the close
    served_by = time.monotonic() + MARGIN_SECONDS
    while requests.get(f"http://{address[0]}:{address[1]}/health", timeout=5).status_code != 200:
        assert time.monotonic() < served_by, "still refused after a slot was freed"
    holders[1].close()


def test_a_large_body_is_not_held_in_memory_for_a_caller_who_has_not_signed_in(start_gateway):
    address = start_gateway(GATEWAY_BODY_DEADLINE_SECONDS=30)
    sock = socket.create_connection(address, timeout=10)
    # a result file may be 16 MiB, but only staff may send one: the refusal comes before any of it is read
    sock.sendall(b"POST /api/v1/result-imports?format=csv HTTP/1.1\r\nHost: gateway\r\n"
                 b"Content-Length: %d\r\n\r\n" % (10 * 1024 * 1024))
    answer = read_answer(sock)
    assert status_of(answer) == 401 and b'"authentication_required"' in answer
    sock.close()


SLOW_POST = (b"POST /api/v1/candidates HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
             b"Content-Length: 9\r\n\r\n{not")


def gateway_with_a_request_in_flight(amqp_uri: str, log_path, grace_seconds: int):
    """The asgi gateway with a POST whose body has begun to arrive (it answered a request sent after it)."""
    address, process = start_asgi_gateway(amqp_uri, log_path, GATEWAY_BODY_DEADLINE_SECONDS=30,
                                          SHUTDOWN_GRACE_SECONDS=grace_seconds)
    in_flight = socket.create_connection(address, timeout=10)
    in_flight.sendall(SLOW_POST)
    assert requests.get(f"http://{address[0]}:{address[1]}/health", timeout=5).status_code == 200
    return process, in_flight


def test_the_asgi_gateway_stops_as_a_service_does(rabbit_config, tmp_path):
    amqp_uri = rabbit_config["AMQP_URI"]
    # SIGTERM drains: the request in flight is answered, then the process exits 0
    process, in_flight = gateway_with_a_request_in_flight(amqp_uri, tmp_path / "drain.log", 30)
    process.send_signal(signal.SIGTERM)
    in_flight.sendall(b" json")
    assert status_of(read_answer(in_flight)) == 400
    assert process.wait(timeout=30) == 0
    # a second SIGTERM while a request is still in flight forces the stop: exit 1, at once
    process, held = gateway_with_a_request_in_flight(amqp_uri, tmp_path / "forced.log", 30)
    process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    wait_for(lambda: process.poll() is None and "Waiting for connections to close" in  # draining, as it says
             (tmp_path / "forced.log").read_text(errors="replace"), timeout=MARGIN_SECONDS + 10, what="draining")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=MARGIN_SECONDS + 10) == 1 and time.monotonic() - stopped_at < 25
    held.close()
    # a drain longer than SHUTDOWN_GRACE_SECONDS is forced too
    process, held = gateway_with_a_request_in_flight(amqp_uri, tmp_path / "grace.log", 1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=MARGIN_SECONDS + 10) == 1
    held.close()


# --- RPC deadlines: a service that takes the call and never answers -----------------------------------------

RPC_DEADLINE_SECONDS = 1.0
SILENT_SECONDS = 3600  # far beyond any deadline here; the test's end kills the container (container_factory)


def unanswering(service: str, method: str) -> tuple[type, Event]:
    """A stand-in for ``service`` whose ``method`` takes the call (its message consumed from the service's RPC
    queue) and then does not answer; and the event it sends once it has taken one."""
    taken = Event()

    def silent(self, *args):
        if not taken.ready():
            taken.send(args)
        eventlet.sleep(SILENT_SECONDS)

    return type(f"Unanswering{service.title()}", (), {"name": service, method: rpc(silent)}), taken


def test_a_service_that_takes_the_call_and_never_answers_is_a_503_service_timeout_at_the_deadline(
        start_gateway, container_factory, rabbit_config):
    """gateway/service.py ``ServiceCalls`` (nameko: credence_common/bus/remote.py ``call_with_deadline``) and
    gateway/amqp_rpc.py (asgi) end the call at ``RPC_TIMEOUT_SECONDS``: a clear 503, not a hanging request."""
    scoring, taken = unanswering("scoring", "list_programs")  # GET /api/v1/programs asks it, for anyone
    container_factory(scoring, {"AMQP_URI": rabbit_config["AMQP_URI"]}).start()
    host, port = start_gateway(RPC_TIMEOUT_SECONDS=RPC_DEADLINE_SECONDS)
    asked = time.monotonic()
    answer = requests.get(f"http://{host}:{port}/api/v1/programs", timeout=RPC_DEADLINE_SECONDS + 60)
    waited = time.monotonic() - asked
    assert taken.ready(), "the stand-in never had the call: this would prove an absent service, not a silent one"
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "service_timeout" and "scoring" in answer.json()["error"]["message"]
    assert RPC_DEADLINE_SECONDS * 0.95 <= waited <= RPC_DEADLINE_SECONDS + MARGIN_SECONDS, waited


def test_a_call_to_another_service_that_takes_it_and_never_answers_fails_with_service_timeout_at_the_deadline(
        start_service, container_factory):
    """A service's own call to another (verification asks scoring for the record an education-record report
    states) has the same deadline: the caller gets 503 ``service_timeout``, nothing is written, and the service
    answers its next call (its worker was not left waiting). On SQLite and on PostgreSQL."""
    container, config = start_service(VerificationService, RPC_TIMEOUT_SECONDS=RPC_DEADLINE_SECONDS)
    scoring, taken = unanswering("scoring", "candidate_record")
    container_factory(scoring, {"AMQP_URI": config["AMQP_URI"]}).start()
    candidate = signed_actor({"subject": "cand-1", "role": "candidate"})
    with rpc_proxy("verification", config) as verification:
        asked = time.monotonic()
        with pytest.raises(ServiceUnavailable) as timed_out:
            verification.request_report(candidate, {"kind": "education_record"})
        waited = time.monotonic() - asked
        assert taken.ready() and taken.wait()[1] == "cand-1"  # scoring had the call, for this candidate
        assert timed_out.value.code == "service_timeout" and "scoring" in timed_out.value.message
        assert RPC_DEADLINE_SECONDS * 0.95 <= waited <= RPC_DEADLINE_SECONDS + MARGIN_SECONDS, waited
        assert query(config["DB_URI"], "select count(*) from verification_reports") == [(0,)]
        assert verification.my_reports(candidate)["reports"] == []
