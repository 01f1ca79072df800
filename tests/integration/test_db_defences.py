"""The connection defences of credence_common/persistence/db.py on a real PostgreSQL, through psycopg2 made green as in
a
service process (tests/conftest.py): a statement the server leaves silent too long fails and its connection
leaves the pool; the server ends a transaction left idle, with its locks; a URI's sslmode reaches libpq; a COPY
lets the other green threads run between its chunks."""

from __future__ import annotations

import time

import eventlet
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from credence_common.persistence.db import copy_in, make_engine
from credence_common.persistence.green_postgres import SilentDatabase
from tests.integration.conftest import POSTGRES_ADMIN_URI, wait_for


def wait_until_session_ended(connection, pid: int, failure: str, seconds: float = 15) -> None:
    """Until the server lists no session ``pid`` any more (the positive signal the tests wait for)."""
    def ended() -> bool:
        connection.rollback()  # a fresh snapshot of pg_stat_activity each time
        return not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pid}).scalar()

    wait_for(ended, timeout=seconds, what=failure)


def test_a_statement_the_server_leaves_silent_fails_and_the_pool_recovers(monkeypatch):
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "0.5")
    engine = make_engine(POSTGRES_ADMIN_URI)
    try:
        with engine.connect() as connection:
            before = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised, engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(3)"))
        assert isinstance(raised.value.orig, SilentDatabase) and raised.value.connection_invalidated
        assert time.monotonic() - started < 2.5
        with engine.connect() as connection:  # a new connection, not the one left mid-statement
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != before
    finally:
        engine.dispose()


def test_the_server_ends_a_transaction_left_idle_and_its_locks_go_with_it(monkeypatch):
    monkeypatch.setenv("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "1")
    engine = make_engine(POSTGRES_ADMIN_URI)
    try:
        with engine.connect() as idle:
            assert idle.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "1s"
            idle.execute(text("SELECT pg_advisory_xact_lock(771177)"))  # held until the transaction ends
            idle_pid = idle.execute(text("SELECT pg_backend_pid()")).scalar()
            # a worker that stopped half-way through: wait until the server has ended its session
            with engine.connect() as watcher:
                wait_until_session_ended(watcher, idle_pid, "the idle transaction's session was not ended")
            with engine.connect() as other:  # the lock went with the ended session: no wait
                other.execute(text("SET lock_timeout = '2s'"))
                other.execute(text("SELECT pg_advisory_xact_lock(771177)"))
                other.rollback()
            with pytest.raises(DBAPIError):
                idle.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_the_uris_sslmode_reaches_libpq():
    """The test server runs without TLS: libpq refuses it only because it read ``sslmode=require``."""
    engine = make_engine(POSTGRES_ADMIN_URI + ("&" if "?" in POSTGRES_ADMIN_URI else "?") + "sslmode=require")
    try:
        with pytest.raises(OperationalError, match="server does not support SSL"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_a_copy_lets_other_green_threads_run_between_its_chunks():
    engine = make_engine(POSTGRES_ADMIN_URI)
    chunks = ["".join(f"{i},row {i}\n" for i in range(k * 5000, (k + 1) * 5000)).encode() for k in range(20)]
    ticks = []
    ticker = eventlet.spawn(lambda: [ticks.append(eventlet.sleep(0)) for _ in range(10_000)])
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TEMP TABLE copied (n int, label text) ON COMMIT DROP"))
            copy_in(connection.connection.driver_connection, "COPY copied FROM STDIN WITH (FORMAT csv)", chunks)
            assert connection.execute(text("SELECT count(*), count(DISTINCT n) FROM copied")).one() == (100_000,
                                                                                                       100_000)
            # and the connection is still green afterwards: a statement waits on the hub, not in libpq
            connection.execute(text("SELECT 1"))
        assert len(ticks) >= 19
    finally:
        ticker.kill()
        engine.dispose()


def test_a_connection_the_server_closed_is_replaced_without_an_error():
    """make_engine checks a pooled connection's socket instead of pinging (credence_common/persistence/db.py): a
    connection
    the server ended while it sat in the pool is refused at checkout and the caller gets a fresh one, with no
    error; a healthy one is reused as it is."""
    engine, admin = make_engine(POSTGRES_ADMIN_URI), make_engine(POSTGRES_ADMIN_URI)
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as connection:  # nothing happened to it: the same session serves again
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == first
        with admin.connect() as killer:
            assert killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
            killer.rollback()
            # wait until the server has ended that session (its socket then reads end-of-file)
            wait_until_session_ended(killer, first, "the terminated session did not end")
        with engine.connect() as connection:  # no OperationalError: the dead one was refused at checkout
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != first
    finally:
        engine.dispose()
        admin.dispose()



def test_the_autocommit_pool_commits_each_statement_without_switching_modes_per_use():
    import psycopg2.extensions

    engine = make_engine(POSTGRES_ADMIN_URI, autocommit=True)
    switches = []
    set_isolation_level = engine.dialect.set_isolation_level
    engine.dialect.set_isolation_level = lambda *args: (switches.append(args[1]), set_isolation_level(*args))[1]
    try:
        with engine.connect() as connection:  # the pool's first connection is put in autocommit once
            connection.execute(text("CREATE TEMP TABLE autocommit_probe (n int)"))
        assert switches == ["AUTOCOMMIT"]
        for n in range(3):  # the same pooled connection, used again: no switching in and out per use
            with engine.connect() as connection:
                connection.execute(text("INSERT INTO autocommit_probe VALUES (:n)"), {"n": n})
                # committed by the statement itself: nothing is left open on the connection
                assert connection.connection.dbapi_connection.get_transaction_status() == \
                    psycopg2.extensions.TRANSACTION_STATUS_IDLE
        assert switches == ["AUTOCOMMIT"]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM autocommit_probe")).scalar() == 3
    finally:
        engine.dispose()
