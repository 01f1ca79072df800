"""The gateway's HTTP server (gateway/http_server.py) in a real nameko container, alone: read deadlines,
the body read before a worker is taken, the bounded connection pool. Raw sockets, so that what is sent
(and not sent) is exact. No service behind it: the routes used here answer without one."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from deploy.platform import free_port
from gateway.service import GatewayService
from tests.integration.conftest import TEST_ACTOR_SIGNING_KEY

DEADLINE_SECONDS = 1.0
MARGIN_SECONDS = 5.0  # scheduling on a loaded test machine
HEALTH = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"


@pytest.fixture
def start_gateway(container_factory, rabbit_config):
    def start(**settings) -> tuple[str, int]:
        port = free_port()
        config = {"AMQP_URI": rabbit_config["AMQP_URI"], "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                  "JWT_SECRET": "integration-jwt-secret", "ACTOR_SIGNING_KEY": TEST_ACTOR_SIGNING_KEY,
                  "RPC_TIMEOUT_SECONDS": 2,
                  "GATEWAY_HEADER_DEADLINE_SECONDS": DEADLINE_SECONDS,
                  "GATEWAY_BODY_DEADLINE_SECONDS": DEADLINE_SECONDS, **settings}
        container_factory(GatewayService, config).start()
        return "127.0.0.1", port

    return start


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


def test_a_slow_body_does_not_hold_the_only_worker(start_gateway):
    address = start_gateway(max_workers=1, GATEWAY_BODY_DEADLINE_SECONDS=30)
    slow = socket.create_connection(address, timeout=10)
    slow.sendall(b"POST /api/v1/candidates HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 9\r\n\r\n{not")
    # the body is still coming: nameko's one worker must be free for anyone else
    health = requests.get(f"http://{address[0]}:{address[1]}/health", timeout=5)
    assert health.status_code == 200
    slow.sendall(b" json")  # the rest arrives: the handler reads the whole body, from memory
    answer = slow.recv(65536)
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
        assert status_of(answer) == 408 and b'"request_timeout"' in answer and b"Connection: close" in answer, name
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


def test_connections_beyond_the_pool_wait_for_a_free_slot(start_gateway):
    address = start_gateway(GATEWAY_MAX_CONNECTIONS=2)
    holders = [socket.create_connection(address, timeout=10) for _ in range(2)]
    for sock in holders:  # served, then kept alive and idle: each holds one of the two slots
        sock.sendall(HEALTH)
        assert status_of(sock.recv(65536)) == 200
    held_from = time.monotonic()
    waiting = socket.create_connection(address, timeout=10)  # waits in the listen backlog
    waiting.sendall(HEALTH)
    answer = waiting.recv(65536)
    # served once a holder, idle past its deadline, was closed and freed its slot
    assert status_of(answer) == 200 and time.monotonic() - held_from >= DEADLINE_SECONDS / 2
    assert [read_until_closed(sock, timeout=MARGIN_SECONDS)[0] for sock in holders] == [b"", b""]
    for sock in holders + [waiting]:
        sock.close()


def test_a_large_body_is_not_held_in_memory_for_a_caller_who_has_not_signed_in(start_gateway):
    address = start_gateway(GATEWAY_BODY_DEADLINE_SECONDS=30)
    sock = socket.create_connection(address, timeout=10)
    # a result file may be 16 MiB, but only staff may send one: the refusal comes before any of it is read
    sock.sendall(b"POST /api/v1/result-imports?format=csv HTTP/1.1\r\nHost: gateway\r\n"
                 b"Content-Length: %d\r\n\r\n" % (10 * 1024 * 1024))
    answer = sock.recv(65536)
    assert status_of(answer) == 401 and b'"authentication_required"' in answer
    sock.close()
