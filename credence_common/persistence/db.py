"""Database access for a service: engine per container, a session per worker, a unit of work per
transaction. The same code runs on SQLite (the embedded default) and PostgreSQL, through psycopg2 (the C driver
on libpq). In a service process psycopg2 is made green (``credence_common/persistence/green_postgres.py``, called right
after
``eventlet.monkey_patch()``), so eventlet switches green threads while a query waits; CLIs use it blocking.

A ``postgresql://`` URI's query string goes to libpq as it is, so ``?sslmode=verify-full&sslrootcert=/path/ca.pem``
(and any other libpq connection parameter) gives a service TLS to PostgreSQL
(``tests/unit/test_db_uri.py::test_the_uris_libpq_parameters_reach_the_driver``)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterable
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from credence_common.config import ensure_sqlite_directory
from credence_common.contracts.errors import Conflict
from credence_common.persistence.green_postgres import connect_host_by_host, is_green, socket_timeout
from credence_common.persistence.idempotency import IdempotentCall, record_ttl

log = logging.getLogger(__name__)

OUTBOX_WRITTEN = "credence.outbox_written"  # session.info flag set by Outbox.add


def normalise_db_uri(db_uri: str) -> str:
    """Accept ``postgresql://`` (or ``postgres://``) and pick psycopg2 for it; the query string is kept."""
    if db_uri.startswith("postgresql://") or db_uri.startswith("postgres://"):
        return "postgresql+psycopg2://" + db_uri.split("://", 1)[1]
    return db_uri


def make_engine(db_uri: str, autocommit: bool = False) -> Engine:
    """The engine of a service's database. ``autocommit``: a second, smaller pool of PostgreSQL connections that
    stay in autocommit (``UnitOfWork.autocommit``); switching a pooled connection in and out of it per use costs
    psycopg2 a round trip each way (about 40 us apiece on loopback, more from a green worker), a tenth of a
    public check's database time (docs/performance.md, "Evening, 2026-12-06")."""
    db_uri = normalise_db_uri(db_uri)
    if db_uri.startswith("sqlite"):
        ensure_sqlite_directory(db_uri)
        engine = create_engine(db_uri, connect_args={"timeout": 30, "check_same_thread": False},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            # WAL lets the outbox relay read while a worker writes; the busy timeout rides out
            # the short write locks instead of failing with "database is locked".
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # nameko runs 10 workers; the outbox relay and the readiness probe each hold one more: 12 stay open, so a
    # busy service does not open and close overflow connections (tens of milliseconds each) all the time
    # psycopg2 runs an executemany as one round trip per row; the ORM flushes a batch's UPDATEs (fifty issued
    # certificates, say) as one executemany, so they go in pages through psycopg2's execute_batch instead
    # (docs/performance.md, "Evening, 2026-12-06"). The price: such a batch reports no per-row count, so the ORM
    # cannot tell a stale UPDATE; no model here has a version_id_col, which is what relies on that count.
    batched = {"executemany_mode": "values_plus_batch"} if db_uri.startswith("postgresql+psycopg2") else {}
    # the autocommit pool serves single-statement reads and the check log's insert: a few connections suffice
    sizes = {"pool_size": 4, "max_overflow": 8, "isolation_level": "AUTOCOMMIT"} if autocommit else \
        {"pool_size": 12, "max_overflow": 8}
    engine = create_engine(db_uri, pool_recycle=1800, hide_parameters=True,
                           connect_args=postgresql_connect_args(db_uri), **sizes, **batched)
    event.listen(engine, "checkout", _refuse_a_connection_the_server_closed)
    event.listen(engine, "do_connect", _one_host_at_a_time_when_green)
    return engine


def _one_host_at_a_time_when_green(dialect, _record, cargs, cparams):
    """A URI naming several hosts (a primary and its standby), in a green process: each host is given its
    ``connect_timeout`` (``green_postgres.connect_host_by_host``); otherwise libpq's own connect (None)."""
    if cargs or not is_green() or "," not in str(cparams.get("host", "")) or "hostaddr" in cparams:
        return None
    return connect_host_by_host(dialect.loaded_dbapi, cparams)


_unpatched_select = eventlet.patcher.original("select")  # a zero-timeout poll never blocks: no need to be green


def _refuse_a_connection_the_server_closed(dbapi_connection, _record, _proxy) -> None:
    """Instead of SQLAlchemy's ``pool_pre_ping`` (a ``SELECT 1`` round trip before every transaction, a sixth
    of a public check's database time): an idle connection has nothing to read unless the server closed it
    (a restart, ``pg_terminate_backend``, its idle timeouts) or wrote to it, so a zero-timeout poll of its
    socket tells. A connection with anything to read is refused and the pool opens another (SQLAlchemy's
    "custom pessimistic ping": ``DisconnectionError`` in ``checkout``). A server that went silent without
    closing is caught by the socket timeouts (``postgresql_connect_args``), as it was with the ping
    (``tests/integration/test_db_defences.py::test_a_connection_the_server_closed_is_replaced_without_an_error``)."""
    if dbapi_connection.closed:
        raise DisconnectionError("the connection is closed")
    poller = _unpatched_select.poll()
    poller.register(dbapi_connection.fileno(), _unpatched_select.POLLIN | _unpatched_select.POLLERR
                    | _unpatched_select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed (or wrote to) an idle connection")


def postgresql_connect_args(db_uri: str | URL | None = None) -> dict:
    """No worker may wait for ever on the database, nor hold its locks for ever.

    The fault suite found a worker that stopped half-way through a transaction (its link to the server had
    gone quiet without closing): it held a row lock that every later login queued behind, and the message it
    was handling was neither done nor returned. Two defences, on every connection
    (``tests/unit/test_db_uri.py::test_every_connection_carries_the_defences``):

    - the server ends a transaction left idle for ``DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS`` (60; its locks go
      with it, and closing the connection wakes the client): libpq's
      ``options=-c idle_in_transaction_session_timeout=...``, added to any ``options`` the URI sets
      (``tests/integration/test_db_defences.py::test_the_server_ends_a_transaction_left_idle_and_its_locks_go_with_it``);
    - the client gives up on a socket silent for ``DB_SOCKET_TIMEOUT_SECONDS`` (300: a bulk import's single
      statement can run for a minute without a byte coming back). In a green process the wait callback stops
      waiting after that long (``credence_common/persistence/green_postgres.py``, tested there). In every process, CLIs
      and
      a COPY's blocking chunks (``copy_in``) included, the kernel drops the connection when data it sent stays
      unacknowledged that long (libpq ``tcp_user_timeout``) or when the peer host stops answering TCP
      keepalives (``keepalives_idle`` 60 s, then 6 probes 10 s apart: about two minutes); a live server that is
      merely busy answers keepalives, so a long statement is not cut. These two kernel settings are passed
      to libpq (tested as above); that the kernel acts on them is Linux's promise, not tested here."""
    idle_seconds = float(os.environ.get("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 60))
    options = f"-c idle_in_transaction_session_timeout={int(idle_seconds * 1000)}"
    uri_options = make_url(db_uri).query.get("options") if db_uri else None
    if uri_options:  # connect_args replace the URI's own parameter of the same name: keep both
        options = " ".join([*([uri_options] if isinstance(uri_options, str) else uri_options), options])
    return {"options": options,
            "keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 6,
            "tcp_user_timeout": int(socket_timeout() * 1000)}


def copy_in(dbapi_connection, sql: str, chunks: Iterable[bytes]) -> None:
    """``COPY ... FROM STDIN`` of ``chunks`` (each ending at a line end) through a psycopg2 connection, inside
    the caller's transaction: one COPY statement per chunk.

    psycopg2 refuses ``copy_expert`` while a wait callback is set ("copy_expert cannot be used with an
    asynchronous callback"), that is, in every green process. There the callback is lifted for each chunk's
    statement and set again before anything can yield: no other green thread runs in between, so none of them
    ever sees it lifted, and ``eventlet.sleep(0)`` lets them run between chunks. While a chunk's COPY runs
    the whole process waits in libpq: with chunks of 256 KiB (``fast_import.COPY_CHUNK``) a few milliseconds
    each. A server that goes silent during a chunk is left by the kernel (``tcp_user_timeout``, keepalives:
    ``postgresql_connect_args``), not by the wait callback, which is lifted then."""
    from psycopg2 import extensions

    callback = extensions.get_wait_callback()
    cursor = dbapi_connection.cursor()
    try:
        for chunk in chunks:
            if callback is None:
                cursor.copy_expert(sql, io.BytesIO(chunk))
                continue
            extensions.set_wait_callback(None)
            try:
                cursor.copy_expert(sql, io.BytesIO(chunk))
            finally:
                extensions.set_wait_callback(callback)
            eventlet.sleep(0)
    finally:
        cursor.close()


class CommitSignal:
    """Wakes the outbox relay as soon as a transaction that wrote an event commits, so events leave
    within milliseconds instead of waiting for the next poll."""

    def __init__(self):
        self._event = eventlet.event.Event()

    def notify(self):
        if not self._event.ready():
            self._event.send(True)

    def wait(self, timeout: float) -> None:
        with eventlet.Timeout(timeout, False):
            self._event.wait()
        self._event = eventlet.event.Event()


class UnitOfWork:
    """What a worker sees as ``self.db``."""

    def __init__(self, engine: Engine, commit_signal: CommitSignal, idempotent_call: IdempotentCall | None = None,
                 idempotency_ttl: timedelta = timedelta(hours=24), autocommit_engine: Engine | None = None):
        self.engine = engine
        self.autocommit_engine = autocommit_engine
        self._commit_signal = commit_signal
        self._session: Session | None = None
        self.idempotent_call = idempotent_call
        self.idempotency_ttl = idempotency_ttl  # how long an Idempotency-Key's answer may be replayed

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(self.engine, expire_on_commit=False)
        return self._session

    @contextlib.contextmanager
    def transaction(self):
        """One atomic step: the state change and its outbox events commit together or not at all."""
        session = self.session
        if session.in_transaction():
            session.rollback()
        call = self.idempotent_call
        claiming = call is not None and not call.attempted
        committing = False
        try:
            with session.begin():
                if claiming:
                    call.claim(session)  # in the same transaction as the effect
                yield session
                wrote_events = session.info.pop(OUTBOX_WRITTEN, False)
                committing = True  # what fails from here on is the COMMIT
        except IntegrityError:
            # A concurrent request won a uniqueness race; nothing of this one was kept.
            session.info.pop(OUTBOX_WRITTEN, None)
            if self.idempotent_call is not None:
                self.idempotent_call.claimed = False
            raise Conflict("concurrent_change",
                           "Another request changed the same record at the same time; nothing was saved. "
                           "Try again.") from None
        except OperationalError as error:
            session.info.pop(OUTBOX_WRITTEN, None)
            if str(getattr(error.orig, "pgcode", None) or "").startswith("40"):
                # PostgreSQL chose this transaction as a deadlock's victim or a serialization's loser: nothing
                # of it was kept, as with a lost uniqueness race
                if self.idempotent_call is not None:
                    self.idempotent_call.claimed = False
                raise Conflict("concurrent_change", "Another request changed the same records at the same time; "
                                                    "nothing was saved. Try again.") from None
            if "database is locked" in str(error):
                # SQLite: another writer held the database past the busy timeout; nothing of this one was kept.
                raise Conflict("concurrent_change", "The database was busy with another change; nothing was "
                               "saved. Try again.") from None
            if not (committing and claiming and call is not None and call.claimed and error.connection_invalidated
                    and self._claim_was_committed(call)):
                raise
            # The connection broke while the COMMIT was in flight (the server crashed, a failover): it may or may
            # not have happened. This attempt's Idempotency-Key record, committed with the effect or not at all,
            # is on the database: it happened, and the entrypoint goes on as after any commit (its answer is then
            # stored, and a retry gets it instead of "pending" for good).
            log.warning("%s: a COMMIT whose answer was lost had happened (its Idempotency-Key record is there)",
                        call.target)
        if wrote_events:  # read-only and event-free transactions leave the relay asleep
            self._commit_signal.notify()

    def _claim_was_committed(self, call: IdempotentCall) -> bool:
        """Asked on a new connection, for up to about 15 s while the database cannot be reached (the primary
        gone, its standby not promoted yet); False if it cannot be told by then."""
        for delay in (0.2, 0.5, 1, 2, 4, 8, None):
            try:
                with self.engine.connect() as connection:
                    return call.claim_is_on(connection)
            except OperationalError:
                if delay is None:
                    return False
                eventlet.sleep(delay)
        return False

    @contextlib.contextmanager
    def autocommit(self):
        """A connection whose every statement commits on its own, for a step that reads and then writes once,
        where nothing else must commit with that write (a public check: the look-ups, then one insert into the
        check log). It spares the ``BEGIN`` and ``COMMIT`` round trips of a transaction; nothing here may write
        an outbox event, which needs a ``transaction``."""
        if self.autocommit_engine is not None:  # PostgreSQL: connections that are always in autocommit
            with self.autocommit_engine.connect() as connection:
                yield connection
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None


class Database(DependencyProvider):
    """nameko dependency: engine in ``setup``, a session per worker, closed in ``worker_teardown``.

    (nameko-sqlalchemy does not support SQLAlchemy 2, hence this small provider.)"""

    def __init__(self, config_key: str = "DB_URI"):
        self.config_key = config_key
        self.engine: Engine | None = None
        self.autocommit_engine: Engine | None = None
        self.commit_signal = CommitSignal()

    def setup(self):
        self.engine = make_engine(self.container.config[self.config_key])
        if self.engine.dialect.name == "postgresql":  # its pool opens connections only once it is used
            self.autocommit_engine = make_engine(self.container.config[self.config_key], autocommit=True)
        self.idempotency_ttl = record_ttl(self.container.config)

    def stop(self):
        for engine in (self.engine, self.autocommit_engine):
            if engine is not None:
                engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        # only an RPC entrypoint answers a caller who may retry with the same Idempotency-Key
        idempotent = IdempotentCall.from_worker(worker_ctx, self.idempotency_ttl) \
            if getattr(worker_ctx.entrypoint, "idempotent", False) else None
        return UnitOfWork(self.engine, self.commit_signal, idempotent, self.idempotency_ttl, self.autocommit_engine)

    def worker_teardown(self, worker_ctx):
        dependency = worker_ctx.service.__dict__.get(self.attr_name)
        if isinstance(dependency, UnitOfWork):
            dependency.close()
