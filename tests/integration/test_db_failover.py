"""A service's engine across a PostgreSQL failover (docs/operations.md, "Running on PostgreSQL with a streaming
standby"): a primary and a synchronous standby of the test's own (tests/faults/standby.py: free ports, a temporary
directory; the shared server on 5432 is not touched), the engine configured with the URI naming both, psycopg2
green as in a service process (tests/conftest.py). The primary crashes (every process SIGKILLed) and the standby
is promoted:

- what a worker had open on the crashed primary fails at once, with an OperationalError (no wait);
- while no server accepts writes, a new connection fails at once too (the standby, still read-only, is refused
  by ``target_session_attrs=read-write``), so a caller is told to try again instead of waiting;
- after the promotion the same engine's next transactions reach the new primary, without a single error: the
  pooled connections to the crashed server are refused at checkout and replaced
  (``db._refuse_a_connection_the_server_closed``);
- what the primary acknowledged before the crash is on the new primary (synchronous replication).

The fault suite does the same under the journeys (tests/faults/test_faults.py, ``postgresql-standby``)."""

from __future__ import annotations

import socket
import time

import eventlet
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from credence_common.persistence.db import make_engine, normalise_db_uri
from tests.faults.standby import ReplicatedPostgres, find_bindir, require_postgres_binaries


@pytest.fixture()
def replicated():
    require_postgres_binaries()
    postgres = ReplicatedPostgres(find_bindir())
    try:
        postgres.start()
        admin = create_engine(normalise_db_uri(postgres.admin_uri), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE failover"))
        admin.dispose()
        yield postgres
    finally:
        postgres.close()


def test_a_service_engine_reaches_the_promoted_standby_and_keeps_what_was_acknowledged(replicated):
    engine = make_engine(replicated.service_uri("failover"))
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE marks (n int PRIMARY KEY)"))
            connection.execute(text("INSERT INTO marks VALUES (1)"))
        # several connections in the pool, all to the primary
        held = [engine.connect() for _ in range(4)]
        for connection in held:
            assert connection.execute(text("SELECT inet_server_port()")).scalar() == replicated.primary.port
        in_flight = held.pop()
        for connection in held:  # back to the pool, idle
            connection.close()
        in_flight.execute(text("INSERT INTO marks VALUES (2)"))  # a transaction open at the crash, not committed

        crashed = replicated.crash_primary()
        started = time.monotonic()
        with pytest.raises(OperationalError):
            in_flight.commit()
        with pytest.raises(OperationalError), eventlet.Timeout(10):
            with engine.connect() as connection:  # the crashed server refuses, the standby is read-only
                connection.execute(text("SELECT 1"))
        assert time.monotonic() - started < 5, "a caller waited for a server that is gone"
        in_flight.close()

        promoted = replicated.promote_standby()
        assert promoted.port != crashed.port
        for n in range(3, 13):  # more transactions than the pool held connections to the crashed server
            with engine.begin() as connection:
                assert connection.execute(text("SELECT inet_server_port()")).scalar() == promoted.port
                connection.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})
        with engine.connect() as connection:
            marks = [row[0] for row in connection.execute(text("SELECT n FROM marks ORDER BY n"))]
        assert marks == [1, *range(3, 13)]  # the acknowledged row survived; the uncommitted one did not
    finally:
        engine.dispose()


def test_a_host_that_takes_connections_and_never_answers_is_passed_over(replicated):
    """The first host of the URI takes the TCP connection and never answers (a frozen server; a host gone behind
    something that still completes handshakes): the service's engine reaches the second within the first's
    ``connect_timeout``. libpq alone, under the green wait callback, waited DB_SOCKET_TIMEOUT_SECONDS on the
    first host and then failed without trying the second (``green_postgres.connect_host_by_host``)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # the kernel completes the handshakes; nobody ever answers
    uri = (f"postgresql://postgres@/failover?host=127.0.0.1:{hole.getsockname()[1]}"
           f"&host=127.0.0.1:{replicated.primary.port}&target_session_attrs=read-write&connect_timeout=2")
    engine = make_engine(uri)
    try:
        started = time.monotonic()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT inet_server_port()")).scalar() == replicated.primary.port
        assert time.monotonic() - started < 10
        # the standby, read-only, is passed over the same way (target_session_attrs), and nothing left: an error
        standby_first = make_engine(f"postgresql://postgres@/failover?host=127.0.0.1:{replicated.standby.port}"
                                    f"&host=127.0.0.1:{hole.getsockname()[1]}&target_session_attrs=read-write"
                                    "&connect_timeout=2")
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="no answer within connect_timeout"):
                standby_first.connect()
            assert time.monotonic() - started < 10
        finally:
            standby_first.dispose()
    finally:
        engine.dispose()
        hole.close()
