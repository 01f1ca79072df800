"""psycopg2 on eventlet (credence_common/persistence/green_postgres.py): the test process is green as every service
process
is (tests/conftest.py calls ``patch_psycopg`` right after ``eventlet.monkey_patch``)."""

from __future__ import annotations

import gc
import os
import socket
import time

import eventlet
import eventlet.hubs
import psycopg2
import pytest

from credence_common.persistence.green_postgres import SilentDatabase, is_green


@pytest.fixture
def silent_server():
    """A TCP port whose kernel completes the handshake and then nothing ever answers: a frozen host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_the_test_process_is_green_as_a_service_is():
    assert is_green()


def test_a_silent_server_is_given_up_after_the_socket_timeout(monkeypatch, silent_server):
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "0.5")
    ticks = []
    ticker = eventlet.spawn(lambda: [ticks.append(eventlet.sleep(0.05)) for _ in range(100)])
    started = time.monotonic()
    with pytest.raises(SilentDatabase, match="sent nothing for 0.5 s"):
        psycopg2.connect(host="127.0.0.1", port=silent_server, user="x", dbname="x", sslmode="disable")
    waited = time.monotonic() - started
    ticker.kill()
    assert 0.4 < waited < 3
    assert len(ticks) >= 5  # the other green threads ran while it waited
    assert issubclass(SilentDatabase, psycopg2.OperationalError)  # SQLAlchemy wraps it as an OperationalError


def test_a_connection_on_a_recycled_descriptor_number_is_not_taken_for_a_second_reader(monkeypatch, silent_server):
    """A green thread still waits on a descriptor that was closed behind eventlet's back; libpq's next socket
    gets the same number. Without ``notify_opened`` the connection's first wait fails with eventlet's "Second
    simultaneous read on fileno N"; with it the stale waiter is told its file is gone and the connection
    proceeds (here to the silent server's timeout)."""
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "0.5")
    # The setup needs libpq's socket to get the number just closed (the lowest free one). Anything else in the
    # process closing a lower descriptor in between (a collected socket, in a full unit run on a loaded machine:
    # seen once) hands libpq another number and proves nothing; the collector is held off and the setup is
    # tried again in that case, so the assertions below only ever judge a recycled number.
    for _attempt in range(5):
        recycled, outcome = _connect_on_a_recycled_number(monkeypatch, silent_server)
        if recycled:
            break
    assert recycled, "libpq never got the closed descriptor's number in five tries"
    assert outcome  # the stale waiter was woken instead of left to collide


def _connect_on_a_recycled_number(monkeypatch, silent_server) -> tuple[bool, list]:
    gc.collect()  # descriptors of collectable garbage freed first: the stale socket takes the lowest free number
    gc.disable()
    try:
        return _recycle(monkeypatch, silent_server)
    finally:
        gc.enable()


def _recycle(monkeypatch, silent_server) -> tuple[bool, list]:
    stale = socket.create_connection(("127.0.0.1", silent_server))
    outcome: list = []

    def wait_for_ever():
        try:
            stale.recv(1)
        except BaseException as error:  # noqa: B036 (whatever eventlet throws in, it must not be swallowed)
            outcome.append(type(error).__name__)

    waiter = eventlet.spawn(wait_for_ever)
    hub = eventlet.hubs.get_hub()
    while stale.fileno() not in hub.listeners[hub.READ]:  # until the waiter is listed on the descriptor
        eventlet.sleep(0)
    connection_fd: list = []
    monkeypatch.setattr("credence_common.persistence.green_postgres.trampoline", _recording_trampoline(connection_fd))
    descriptor = stale.detach()
    os.close(descriptor)  # closed silently: the hub still lists the waiter on this number
    with pytest.raises(SilentDatabase):
        psycopg2.connect(host="127.0.0.1", port=silent_server, user="x", dbname="x", sslmode="disable")
    recycled = bool(connection_fd) and connection_fd[0] == descriptor
    if not recycled:
        waiter.kill()
        return False, outcome
    waiter.wait()
    return True, outcome


def _recording_trampoline(seen: list):
    from eventlet.hubs import trampoline

    def recording(fd, *args, **kwargs):
        seen.append(fd)
        return trampoline(fd, *args, **kwargs)

    return recording
