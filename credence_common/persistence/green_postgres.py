"""psycopg2 (a C driver, libpq underneath) on eventlet's green threads.

libpq blocks in C, where eventlet cannot switch green threads. psycopg2 lets a *wait callback* do every wait
instead: it sends and receives with libpq's non-blocking calls and asks the callback to wait until the socket is
ready, which on eventlet's hub (``trampoline``) lets the other green threads run meanwhile. Call
``patch_psycopg()`` once per process, right after ``eventlet.monkey_patch()`` (``credence_common/runtime/runner.py``,
``tests/conftest.py``). Processes without eventlet (migrations, the ``credence`` CLI, the benchmarks) do not call
it and use psycopg2 as it is, blocking.

The callback is psycogreen's (``psycogreen.eventlet.eventlet_wait_callback``, psycogreen 1.0.2, the pairing
psycopg2's documentation points to) with one addition, which is why it is ours and psycogreen is not a
dependency: psycogreen waits for ever, and a worker must not. With pg8000 the socket's own timeout ended a wait
on a database that had gone silent (a half-open connection after a partition, a frozen host: the fault suite's
worker that held a row lock for ever, docs/reliability.md); here the callback gives up after
``DB_SOCKET_TIMEOUT_SECONDS`` (300) without a byte from the server. psycopg2 then closes the connection (its
``green_panic``: a half-finished exchange cannot be resumed), SQLAlchemy sees ``connection.closed`` and discards it
from the pool, and the worker's transaction fails instead of waiting
(``tests/unit/test_green_postgres.py::test_a_silent_server_is_given_up_after_the_socket_timeout``,
``tests/integration/test_db_defences.py::test_a_statement_the_server_leaves_silent_fails_and_the_pool_recovers``).
"""

from __future__ import annotations

import os

import eventlet
import psycopg2
from eventlet import hubs
from eventlet.hubs import trampoline
from psycopg2 import extensions


class SilentDatabase(psycopg2.OperationalError):
    """The server sent nothing for DB_SOCKET_TIMEOUT_SECONDS while a statement (or the connection) waited."""


# psycopg2's connection states while it connects: CONN_STATUS_SETUP, _CONNECTING and _DATESTYLE (the last two are
# not exported; psycopg/connection.h)
CONNECTING = frozenset({extensions.STATUS_SETUP, 20, 21})


def socket_timeout() -> float:
    return float(os.environ.get("DB_SOCKET_TIMEOUT_SECONDS", 300))


def eventlet_wait_callback(conn, timeout=None):
    """Wait for libpq's socket on eventlet's hub, for at most ``socket_timeout()`` seconds each time."""
    seconds = socket_timeout()
    announced = None
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if conn.status in CONNECTING and conn.fileno() != announced:
            # libpq opened this socket in C, behind eventlet's back. A green socket tells the hub when it opens
            # a file descriptor (eventlet's notify_opened), so that a listener still registered on a recycled
            # descriptor number (its old file closed without the hub knowing) is discarded; without this the
            # new connection's first wait fails with "Second simultaneous read on fileno N" (seen once in
            # tests/integration/test_sms_claims.py on PostgreSQL; tests/unit/test_green_postgres.py::
            # test_a_connection_on_a_recycled_descriptor_number_is_not_taken_for_a_second_reader). Only while
            # connecting: the socket never changes afterwards.
            announced = conn.fileno()
            hubs.notify_opened(announced)
        if state == extensions.POLL_READ:
            trampoline(conn.fileno(), read=True, timeout=seconds,
                       timeout_exc=SilentDatabase(f"the database sent nothing for {seconds:g} s"))
        elif state == extensions.POLL_WRITE:
            trampoline(conn.fileno(), write=True, timeout=seconds,
                       timeout_exc=SilentDatabase(f"the database took nothing for {seconds:g} s"))
        else:
            raise psycopg2.OperationalError(f"Bad result from poll: {state!r}")


def patch_psycopg() -> None:
    """Make every psycopg2 connection of this process cooperate with eventlet."""
    extensions.set_wait_callback(eventlet_wait_callback)


def is_green() -> bool:
    return extensions.get_wait_callback() is not None


def connect_host_by_host(dbapi, cparams: dict):
    """Connect to the first of several hosts (``host=a,b port=p,q``, a URI naming a primary and its standby)
    that takes the connection, each given ``connect_timeout`` seconds, in a green process.

    libpq applies ``connect_timeout`` only to a blocking connect; under the wait callback a host that takes the
    TCP connection and then says nothing (a frozen server, a host gone behind a device that still answers) is
    waited on for ``DB_SOCKET_TIMEOUT_SECONDS`` (300), and then the whole connection fails: libpq never reaches
    the next host, so a service could not reach a promoted standby listed second. Here each host is tried on its
    own, with the same parameters (``target_session_attrs`` included: a read-only server is refused and the next
    one tried), for at most ``connect_timeout`` each; the last error is raised when none takes it
    (``tests/integration/test_db_failover.py::test_a_host_that_takes_connections_and_never_answers_is_passed_over``).
    """
    hosts = str(cparams["host"]).split(",")
    ports = str(cparams.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    seconds = float(cparams["connect_timeout"]) if cparams.get("connect_timeout") else None
    failure: Exception | None = None
    for host, port in zip(hosts, ports, strict=True):
        params = dict(cparams, host=host)
        if port:
            params["port"] = port
        else:
            params.pop("port", None)
        silent = psycopg2.OperationalError(f'connection to server at "{host}", port {port or "default"} failed: '
                                           f"no answer within connect_timeout ({seconds} s)")
        try:
            with eventlet.Timeout(seconds, silent):
                return dbapi.connect(**params)
        except psycopg2.OperationalError as error:
            failure = error
    assert failure is not None
    raise failure
