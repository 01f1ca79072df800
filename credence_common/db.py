"""Database access for a service: engine per container, a session per worker, a unit of work per
transaction. The same code runs on SQLite (the embedded default) and PostgreSQL (through pg8000, a
pure-Python driver, so that eventlet can switch green threads while a query waits)."""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import timedelta

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from credence_common.config import ensure_sqlite_directory
from credence_common.errors import Conflict
from credence_common.idempotency import IdempotentCall, record_ttl

log = logging.getLogger(__name__)

OUTBOX_WRITTEN = "credence.outbox_written"  # session.info flag set by Outbox.add


def normalise_db_uri(db_uri: str) -> str:
    """Accept ``postgresql://`` and pick the green-friendly driver for it."""
    if db_uri.startswith("postgresql://") or db_uri.startswith("postgres://"):
        return "postgresql+pg8000://" + db_uri.split("://", 1)[1]
    return db_uri


def make_engine(db_uri: str) -> Engine:
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
    return create_engine(db_uri, pool_size=12, max_overflow=8, pool_pre_ping=True, pool_recycle=1800,
                         hide_parameters=True, connect_args=postgresql_connect_args())


def postgresql_connect_args() -> dict:
    """No worker may wait for ever on the database, nor hold its locks for ever.

    The fault suite found a worker that stopped half-way through a transaction (its link to the server had
    gone quiet without closing): it held a row lock that every later login queued behind, and the message it
    was handling was neither done nor returned. The server now ends a transaction left idle for
    ``DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS`` (60; its locks go with it, and closing the connection wakes
    the client), and the client gives up on a socket silent for ``DB_SOCKET_TIMEOUT_SECONDS`` (300: a bulk
    import's single statement can run for a minute without a byte coming back)."""
    idle_seconds = float(os.environ.get("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 60))
    return {"timeout": float(os.environ.get("DB_SOCKET_TIMEOUT_SECONDS", 300)),
            "startup_params": {"idle_in_transaction_session_timeout": str(int(idle_seconds * 1000))}}


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


TRANSACTION_SCOPE = "credence.transaction_scope"


def transaction_scope(session: Session) -> dict:
    """What a use case keeps for the rest of the current transaction only (rows it locked, say); emptied when
    ``UnitOfWork.transaction`` begins and ends, so nothing leaks into the worker's next transaction."""
    return session.info.setdefault(TRANSACTION_SCOPE, {})


class UnitOfWork:
    """What a worker sees as ``self.db``."""

    def __init__(self, engine: Engine, commit_signal: CommitSignal, idempotent_call: IdempotentCall | None = None,
                 idempotency_ttl: timedelta = timedelta(hours=24)):
        self.engine = engine
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
        session.info.pop(TRANSACTION_SCOPE, None)
        try:
            with session.begin():
                if self.idempotent_call is not None and not self.idempotent_call.attempted:
                    self.idempotent_call.claim(session)  # in the same transaction as the effect
                yield session
                wrote_events = session.info.pop(OUTBOX_WRITTEN, False)
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
            if "database is locked" not in str(error):
                raise
            # SQLite: another writer held the database past the busy timeout; nothing of this one was kept.
            raise Conflict("concurrent_change", "The database was busy with another change; nothing was saved. "
                           "Try again.") from None
        finally:
            session.info.pop(TRANSACTION_SCOPE, None)
        if wrote_events:  # read-only and event-free transactions leave the relay asleep
            self._commit_signal.notify()

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
        self.commit_signal = CommitSignal()

    def setup(self):
        self.engine = make_engine(self.container.config[self.config_key])
        self.idempotency_ttl = record_ttl(self.container.config)

    def stop(self):
        if self.engine is not None:
            self.engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        # only an RPC entrypoint answers a caller who may retry with the same Idempotency-Key
        idempotent = IdempotentCall.from_worker(worker_ctx, self.idempotency_ttl) \
            if getattr(worker_ctx.entrypoint, "idempotent", False) else None
        return UnitOfWork(self.engine, self.commit_signal, idempotent, self.idempotency_ttl)

    def worker_teardown(self, worker_ctx):
        dependency = worker_ctx.service.__dict__.get(self.attr_name)
        if isinstance(dependency, UnitOfWork):
            dependency.close()
