"""psycopg2 on eventlet (credence_common/persistence/green_postgres.py): the test process is green as every service
process
is (tests/conftest.py calls ``patch_psycopg`` right after ``eventlet.monkey_patch``)."""

from __future__ import annotations

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
    stale = socket.create_connection(("127.0.0.1", silent_server))
    outcome = []

    def wait_for_ever():
        try:
            stale.recv(1)
        except BaseException as error:  # noqa: B036 (whatever eventlet throws in, it must not be swallowed)
            outcome.append(type(error).__name__)

    waiter = eventlet.spawn(wait_for_ever)
    hub = eventlet.hubs.get_hub()
    while stale.fileno() not in hub.listeners[hub.READ]:  # until the waiter is listed on the descriptor
        eventlet.sleep(0)
    descriptor = stale.detach()
    os.close(descriptor)  # closed silently: the hub still lists the waiter on this number
    connection_fd = []
    monkeypatch.setattr("credence_common.persistence.green_postgres.trampoline", _recording_trampoline(connection_fd))
    with pytest.raises(SilentDatabase):
        psycopg2.connect(host="127.0.0.1", port=silent_server, user="x", dbname="x", sslmode="disable")
    assert connection_fd and connection_fd[0] == descriptor  # the number was indeed recycled
    waiter.wait()
    assert outcome  # the stale waiter was woken instead of left to collide


def _recording_trampoline(seen: list):
    from eventlet.hubs import trampoline

    def recording(fd, *args, **kwargs):
        seen.append(fd)
        return trampoline(fd, *args, **kwargs)

    return recording
