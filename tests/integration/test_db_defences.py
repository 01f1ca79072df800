"""The connection defences of credence_common/persistence/db.py on a real PostgreSQL, through psycopg2 made green as in
a
service process (tests/conftest.py): a statement the server leaves silent too long fails and its connection
leaves the pool; the server ends a transaction left idle, with its locks; a URI's sslmode reaches libpq; a COPY
lets the other green threads run between its chunks. The last three tests do it through a service: a nameko
container with the ``Database`` dependency every service has, its connections, its unit of work."""

from __future__ import annotations

import os
import time

import eventlet
import pytest
from eventlet.event import Event
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from credence_common.bus.entrypoints import rpc  # what every service uses: its database faults are 503s
from credence_common.contracts.errors import Conflict, ServiceUnavailable
from credence_common.persistence.db import Database, copy_in, make_engine
from credence_common.persistence.green_postgres import SilentDatabase
from tests.integration.conftest import POSTGRES_ADMIN_URI, Databases, query, rpc_proxy, wait_for


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


# --- the same defences on a service's own connections --------------------------------------------------------

_socket = eventlet.patcher.original("socket")  # a plain copy of the connection's descriptor, unknown to the hub
MARGIN_SECONDS = 5.0  # scheduling on a loaded test machine


def defences_of(connection) -> dict:
    """What the server and the kernel apply to this connection: the server's idle-in-transaction timeout for
    its session, and the TCP options libpq set on its socket (``postgresql_connect_args``)."""
    dbapi_connection = connection.connection.dbapi_connection
    sock = _socket.fromfd(dbapi_connection.fileno(), _socket.AF_INET, _socket.SOCK_STREAM)
    try:
        return {
            "idle_in_transaction_session_timeout":
                connection.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar(),
            "keepalive": sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE),
            "keepidle": sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPIDLE),
            "keepintvl": sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPINTVL),
            "keepcnt": sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT),
            "user_timeout": sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_USER_TIMEOUT),
        }
    finally:
        sock.close()


class DatabaseProbe:
    """A service with the database dependency of every service (credence_common/persistence/db.py ``Database``)."""

    name = "db_probe"
    db = Database()
    resume = Event()  # the stalled worker goes on once the test sends this (a fresh one per test: the fixture)
    stalled: dict = {}  # marker -> the backend pid of the transaction a worker left idle
    holding: dict = {}  # row -> sent once a worker holds its lock

    @rpc
    def connection_defences(self) -> dict:
        with self.db.transaction() as session:
            connection = session.connection()
            in_transaction = defences_of(connection)
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with self.db.autocommit() as connection:  # the second pool, of connections always in autocommit
            in_autocommit = defences_of(connection)
        return {"transaction": in_transaction, "autocommit": in_autocommit, "pid": pid}

    @rpc
    def stall(self, marker: str) -> None:
        """A worker that stops half-way through its transaction (it waits on something that is not the database),
        holding the row it wrote, then goes on."""
        with self.db.transaction() as session:
            session.execute(text("INSERT INTO probe_rows (marker) VALUES (:marker)"), {"marker": marker})
            DatabaseProbe.stalled[marker] = session.execute(text("SELECT pg_backend_pid()")).scalar()
            DatabaseProbe.resume.wait()
            session.execute(text("SELECT 1"))

    @rpc
    def lock_two(self, first: str, second: str) -> None:
        """Writes ``first``, waits until the other caller has written its first row too, then writes ``second``."""
        with self.db.transaction() as session:
            session.execute(text("UPDATE probe_rows SET marker = marker WHERE marker = :m"), {"m": first})
            DatabaseProbe.holding[first].send()
            DatabaseProbe.holding[second].wait()
            session.execute(text("UPDATE probe_rows SET marker = marker WHERE marker = :m"), {"m": second})

    @rpc
    def slow_statement(self, seconds: float) -> None:
        with self.db.transaction() as session:
            session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})


DEFENCE_SETTINGS = ("DB_SOCKET_TIMEOUT_SECONDS", "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS")


@pytest.fixture
def probe(container_factory, rabbit_config, tmp_path):
    """``probe()``: the probe service started on a new PostgreSQL database (the environment the test set is
    what its engines read, as a service process reads its own); returns its config."""
    postgres = Databases("postgresql", tmp_path)
    DatabaseProbe.resume, DatabaseProbe.stalled = Event(), {}
    DatabaseProbe.holding = {"a": Event(), "b": Event()}

    def start() -> dict:
        # the database is made with the default defences: a test's short socket timeout is for the service under
        # test, and a CREATE DATABASE on a loaded machine can take longer (seen: 0.5 s, in a full run)
        chosen = {name: os.environ.pop(name) for name in DEFENCE_SETTINGS if name in os.environ}
        try:
            db_uri = postgres.create("db_probe", revision=None)
            engine = make_engine(db_uri)
            try:
                with engine.begin() as connection:
                    connection.execute(text("CREATE TABLE probe_rows (marker text PRIMARY KEY)"))
            finally:
                engine.dispose()
        finally:
            os.environ.update(chosen)
        config = {"AMQP_URI": rabbit_config["AMQP_URI"], "DB_URI": db_uri}
        container_factory(DatabaseProbe, config).start()
        return config

    yield start
    if not DatabaseProbe.resume.ready():
        DatabaseProbe.resume.send()
    postgres.drop_all()


def test_every_connection_a_service_opens_carries_the_defences(monkeypatch, probe):
    monkeypatch.setenv("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "45")
    config = probe()
    with rpc_proxy("db_probe", config) as service:
        seen = service.connection_defences()
    expected = {"idle_in_transaction_session_timeout": "7s", "keepalive": 1, "keepidle": 60, "keepintvl": 10,
                "keepcnt": 6, "user_timeout": 45_000}
    assert seen["transaction"] == expected and seen["autocommit"] == expected


def test_a_transaction_a_service_leaves_idle_is_ended_with_its_locks_and_its_call_fails_at_once(monkeypatch, probe):
    monkeypatch.setenv("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "1")
    config = probe()

    def stall() -> None:
        with rpc_proxy("db_probe", config) as service:
            service.stall("left-idle")

    call = eventlet.spawn(stall)
    wait_for(lambda: "left-idle" in DatabaseProbe.stalled, what="the worker to stop half-way through")
    engine = make_engine(config["DB_URI"])
    try:
        with engine.connect() as watcher:
            wait_until_session_ended(watcher, DatabaseProbe.stalled["left-idle"],
                                     "the server did not end the session of the transaction left idle")
        with engine.connect() as other:  # the row it wrote was locked; the lock went with the session
            other.execute(text("SET lock_timeout = '2s'"))
            other.execute(text("INSERT INTO probe_rows (marker) VALUES ('left-idle')"))
            other.rollback()
    finally:
        engine.dispose()
    DatabaseProbe.resume.send()  # the worker goes on: its next statement fails at once, and so does its call
    resumed = time.monotonic()
    with pytest.raises(ServiceUnavailable) as failed, eventlet.Timeout(MARGIN_SECONDS):
        call.wait()
    assert time.monotonic() - resumed < MARGIN_SECONDS
    # a "try again" (503 over HTTP), not a service's crash (502): credence_common/bus/entrypoints.py
    assert failed.value.code == "database_unavailable", failed.value
    assert query(config["DB_URI"], "SELECT count(*) FROM probe_rows") == [(0,)]  # nothing of it was kept
    with rpc_proxy("db_probe", config) as service:  # the service answers its next call, on a live connection
        answer = service.connection_defences()
    assert answer["pid"] != DatabaseProbe.stalled["left-idle"]
    assert answer["transaction"]["idle_in_transaction_session_timeout"] == "1s"


def test_a_statement_the_server_leaves_silent_fails_a_services_call_in_time_and_the_next_is_served(monkeypatch,
                                                                                                   probe):
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "0.5")
    config = probe()
    with rpc_proxy("db_probe", config) as service:
        before = service.connection_defences()
        assert before["transaction"]["user_timeout"] == 500
        asked = time.monotonic()
        with pytest.raises(ServiceUnavailable) as failed:
            service.slow_statement(3)
        assert time.monotonic() - asked < 2.5
        assert failed.value.code == "database_unavailable"  # the driver's words stay in the service's log
        after = service.connection_defences()  # served, by a new connection: the silent one left the pool
    assert after["pid"] != before["pid"]


def test_a_deadlock_victim_is_told_concurrent_change_and_the_other_call_goes_through(probe):
    """PostgreSQL ends one of two transactions that wait on each other (SQLSTATE 40P01): its caller is told 409
    concurrent_change, as for a lost uniqueness race (credence_common/persistence/db.py), not 503 or 502."""
    config = probe()
    engine = make_engine(config["DB_URI"])
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO probe_rows (marker) VALUES ('a'), ('b')"))
    finally:
        engine.dispose()
    outcomes = []

    def lock(first: str, second: str) -> None:
        with rpc_proxy("db_probe", config) as service:
            try:
                service.lock_two(first, second)
                outcomes.append("done")
            except Conflict as refused:
                outcomes.append(refused.code)

    with eventlet.Timeout(30):
        calls = [eventlet.spawn(lock, "a", "b"), eventlet.spawn(lock, "b", "a")]
        for call in calls:
            call.wait()
    assert sorted(outcomes) == ["concurrent_change", "done"]
