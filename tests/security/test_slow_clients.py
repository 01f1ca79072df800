"""Slow clients (#17 item 9): an attacker opens a thousand connections and sends half a request on each
(nothing, headers a byte at a time, or half a body then a byte at a time), hoping to hold every worker and
connection of the gateway. Other clients must still be served, and the gateway must close each slow
connection at its read deadline: a total deadline, which a byte every half second does not push back.

Black-box: raw sockets against the gateway's address, so the test holds whatever serves HTTP there. The
platform runs with short deadlines so that the test need not wait the production ones out.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from bench.slow_clients import KINDS, half_request
from credence_common.contracts.certificate_numbers import format_certificate_number
from tests.e2e.conftest import BACKENDS, NAMEKO_VARIANT, running_platform, variant_settings
from tests.security.conftest import PRODUCTION_LIMITS, client_from, error_code

HEADER_DEADLINE_SECONDS = 6
BODY_DEADLINE_SECONDS = 6
# how late after its deadline a connection may be closed on a loaded test machine (accept lag, scheduling)
CLOSE_MARGIN_SECONDS = 15
CONNECTIONS = 1000
TRICKLE_EVERY_SECONDS = 0.5
PROBE_TIMEOUT_SECONDS = 5



@dataclass
class SlowConnection:
    kind: str  # idle | trickling-headers | half-body
    sock: socket.socket
    opened_at: float
    to_trickle: bytes = b""
    received: bytes = b""
    closed_at: float | None = None
    how: str = ""  # what told us the server closed it: eof, reset
    sent_after_open: int = 0


def open_slow_connection(address: tuple[str, int], index: int) -> SlowConnection:
    sock = socket.create_connection(address, timeout=10)
    opened_at = time.monotonic()
    kind = KINDS[index % len(KINDS)]
    first, rest = half_request(kind)  # the same attack as the bench's (bench/slow_clients.py)
    if first:
        sock.sendall(first)
    return SlowConnection(kind, sock, opened_at, to_trickle=rest)


def read_until_closed(connection: SlowConnection, give_up_at: float) -> None:
    """Notes when and how the server closes the connection (what it sent first, a 408, is kept)."""
    while time.monotonic() < give_up_at:
        connection.sock.settimeout(max(0.01, give_up_at - time.monotonic()))
        try:
            chunk = connection.sock.recv(65536)
        except TimeoutError:
            return
        except OSError as error:
            if error.errno in (errno.ECONNRESET, errno.EPIPE):
                connection.closed_at, connection.how = time.monotonic(), "reset"
                return
            raise
        if not chunk:
            connection.closed_at, connection.how = time.monotonic(), "eof"
            return
        connection.received += chunk


def trickle(connections: list[SlowConnection], give_up_at: float) -> None:
    """Sends the next byte of each trickling connection every TRICKLE_EVERY_SECONDS until the server closes
    it (or ``give_up_at``)."""
    while time.monotonic() < give_up_at:
        sending = [c for c in connections if c.closed_at is None and c.to_trickle]
        if not sending:
            return
        for connection in sending:
            try:
                connection.sock.send(connection.to_trickle[:1])
                connection.to_trickle = connection.to_trickle[1:]
                connection.sent_after_open += 1
            except OSError:
                pass  # closed by the server: its reader notes it
        time.sleep(TRICKLE_EVERY_SECONDS)


@pytest.fixture(scope="module", params=[*BACKENDS, NAMEKO_VARIANT])
def short_deadline_platform(request, tmp_path_factory):
    backend, settings = variant_settings(request.param)
    with running_platform(backend, tmp_path_factory.mktemp(f"slow-{request.param.replace('/', '-')}"),
                          **PRODUCTION_LIMITS, **settings,
                          GATEWAY_HEADER_DEADLINE_SECONDS=str(HEADER_DEADLINE_SECONDS),
                          GATEWAY_BODY_DEADLINE_SECONDS=str(BODY_DEADLINE_SECONDS)) as instance:
        yield instance


def test_a_thousand_half_sent_requests_neither_freeze_the_gateway_nor_outstay_their_deadline(
        short_deadline_platform):
    platform = short_deadline_platform
    address = ("127.0.0.1", platform.gateway_port)
    connections = [open_slow_connection(address, index) for index in range(CONNECTIONS)]
    last_opened = connections[-1].opened_at
    give_up_at = last_opened + max(HEADER_DEADLINE_SECONDS, BODY_DEADLINE_SECONDS) + CLOSE_MARGIN_SECONDS
    # one thread each (green ones under the test run's eventlet.monkey_patch): blocking reads, simply
    watchers = [threading.Thread(target=read_until_closed, args=(c, give_up_at), daemon=True) for c in connections]
    watchers.append(threading.Thread(target=trickle, args=(connections, give_up_at), daemon=True))
    for watcher in watchers:
        watcher.start()
    try:
        # while they are all held open, another caller is served: the probe and a public check
        caller = client_from("127.0.0.31")
        health = caller.get(platform.gateway_url + "/health", timeout=PROBE_TIMEOUT_SECONDS)
        assert health.status_code == 200
        unknown = {"holder_name": "王小明", "certificate_number": format_certificate_number(1999, "11", 1)}
        check = caller.post(platform.gateway_url + "/api/v1/certificate-checks", json=unknown,
                            timeout=PROBE_TIMEOUT_SECONDS)
        assert check.status_code == 404 and error_code(check) == "certificate_not_found"
        answered_at = time.monotonic()

        for watcher in watchers:
            watcher.join(timeout=max(0.0, give_up_at - time.monotonic()) + 5)
        still_open = [c for c in connections if c.closed_at is None]
        assert not still_open, (f"{len(still_open)} slow connections open {CLOSE_MARGIN_SECONDS} s after their "
                                f"deadline: {sorted({c.kind for c in still_open})}")
        # the callers above were served while the slow connections held: none had been let go yet
        assert all(c.closed_at > answered_at for c in connections)
        for connection in connections:
            deadline = BODY_DEADLINE_SECONDS if connection.kind == "half-body" else HEADER_DEADLINE_SECONDS
            assert connection.closed_at - connection.opened_at <= deadline + CLOSE_MARGIN_SECONDS, connection.kind
            # a half-sent request is told why (unless the reset of a still-sending socket ate the answer)
            if connection.received:
                assert connection.received.startswith(b"HTTP/1.1 408 "), connection.received[:80]
                assert b'"request_timeout"' in connection.received
            if connection.kind == "idle":
                assert connection.received == b"" and connection.how == "eof"
            else:
                # closed while it was still sending, a byte every half second: a per-read timeout never would
                assert connection.sent_after_open >= 2 and connection.to_trickle
    finally:
        for connection in connections:
            connection.sock.close()
