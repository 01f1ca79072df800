"""nameko entrypoints with Credence's conventions.

``rpc``: a typed ``CredenceError`` is an expected outcome (the caller gets it back as the same class),
so nameko logs it as a one-line warning instead of an error with a traceback.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import eventlet
from kombu.exceptions import OperationalError
from nameko.exceptions import IncorrectSignature
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import timer
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import credence_common.bus.error_registry  # noqa: F401  (refusals come back as their own class)
from credence_common.bus.reply_channel import ReplyChannel
from credence_common.bus.rpc_queue import ReplicatedRpcConsumer
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import DATABASE_UNAVAILABLE, CredenceError, ServiceUnavailable
from credence_common.observability.logs import CorrelationContext
from credence_common.persistence.idempotency import StoredAnswer, prune, replay
from credence_common.security import actors
from credence_common.security.actor_tokens import ActorVerifier, KeySpecError

log = logging.getLogger(__name__)
IDEMPOTENCY_PRUNE_INTERVAL_SECONDS = 600  # a record outlives its TTL by at most this (it is never replayed then)


class IdempotentRpc(Rpc):
    """nameko's RPC entrypoint, plus ``Idempotency-Key`` (credence_common/persistence/idempotency.py): a replayed call
    answers what the first one answered, and a first call stores its answer before the reply leaves."""

    idempotent = True
    reply_channel = ReplyChannel()
    # rpc-<service> as a quorum queue, replicated over a cluster's nodes (credence_common/bus/rpc_queue.py)
    rpc_consumer = ReplicatedRpcConsumer()

    def __init__(self, idempotent: bool = True, **kwargs):
        # ``@rpc(idempotent=False)``: the answer is a credential (a token, a code) and must never be stored or
        # replayed, whatever the caller sends; a retry runs again, as a fresh attempt
        self.idempotent = idempotent
        super().__init__(**kwargs)

    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None and isinstance(exc_info[1], StoredAnswer):
            result, error = replay(exc_info[1].answer)
            exc_info = None if error is None else (type(error), error, None)
        else:
            self._store_answer(worker_ctx, result, exc_info)
            exc_info = database_fault_as_refusal(worker_ctx, exc_info)
        try:
            return self._reply(message, result, exc_info)
        except (OperationalError, ConnectionError, OSError) as exc:
            # The broker went away while the reply was being sent. nameko would let this kill the whole
            # container (found by the fault suite: a broker restart took services down for good). The request
            # stays unacknowledged, so the broker redelivers it; a retry with the same Idempotency-Key is
            # answered from the stored answer, and the caller has timed out on this reply anyway.
            log.warning("%s.%s: the reply could not be sent (%s); the request will be redelivered",
                        worker_ctx.container.service_name, worker_ctx.entrypoint.method_name, exc)
            return result, exc_info

    def _reply(self, message, result, exc_info):
        """What nameko's ``RpcConsumer.handle_result`` does, on the container's kept-open ``ReplyChannel``
        (no publisher confirm; credence_common/bus/reply_channel.py says why): answer, then acknowledge."""
        result, exc_info = self.reply_channel.send(message, result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info

    def check_signature(self, args, kwargs):
        """nameko's check (a call that does not fit the method is refused as ``IncorrectSignature``), with the
        method's signature read once instead of by ``inspect.getcallargs`` on every call."""
        try:
            signature = self._signature
        except AttributeError:
            signature = self._signature = inspect.signature(getattr(self.container.service_cls, self.method_name))
        try:
            signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

    @staticmethod
    def _store_answer(worker_ctx, result, exc_info) -> None:
        from credence_common.persistence.db import UnitOfWork

        for dependency in vars(worker_ctx.service).values():
            call = getattr(dependency, "idempotent_call", None) if isinstance(dependency, UnitOfWork) else None
            if call is None or not call.claimed:
                continue
            if exc_info is not None and not isinstance(exc_info[1], CredenceError):
                return  # a fault: the record stays without an answer, and a retry is told so (409)
            # The effect is committed: keep trying to store its answer for a while (a database that refuses
            # connections for a few seconds), or a retry of this request is told "pending" for good.
            for delay in (0.2, 0.5, 1, 2, 4, 8, None):
                try:
                    with dependency.transaction() as session:
                        call.store(session, result if exc_info is None else None,
                                   exc_info[1] if exc_info is not None else None)
                    return
                except Exception:
                    if delay is None:
                        log.exception("%s: the answer to an idempotent request was not stored", call.target)
                        return
                    eventlet.sleep(delay)
            return


# SQLSTATE classes of a database that cannot serve now: connection exception, insufficient resources (too many
# connections, disk full), operator intervention (shutdown, statement timeout), system error; and two codes: a
# lock not granted in time, a transaction ended for idling. Not class 40 (a conflict: db.py answers it 409) nor
# the deterministic ones (54: a statement too complex, 42: a bug) that no retry cures.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
UNAVAILABLE_SQLSTATES = ("55P03", "25P03")
# SQLite's words for a database that is busy or cannot be read now (its syntax errors and missing tables are
# OperationalErrors too, and stay faults)
UNAVAILABLE_SQLITE = ("database is locked", "database table is locked", "disk i/o error",
                      "unable to open database file")


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot serve now (lost, restarting, failing over, overloaded), as
    opposed to a bug or a refusal of this request."""
    if isinstance(error, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, DatabaseOperationalError):
        return False
    original = error.orig
    sqlstate = getattr(original, "pgcode", None)
    if type(original).__module__.startswith("sqlite3"):
        return str(original).lower().startswith(UNAVAILABLE_SQLITE)
    if sqlstate is None:  # libpq's own failures (no connection, a silent server) carry no SQLSTATE
        return True
    return sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in UNAVAILABLE_SQLSTATES


def database_fault_as_refusal(worker_ctx, exc_info):
    """A database that dropped the connection, ended an idle transaction, timed out or refused connections
    (a restart, a failover to the standby) is a "try again", not a crash: the caller gets ``503
    database_unavailable`` instead of ``502 upstream_error``. Nothing of the failed transaction was kept unless the
    connection died during its COMMIT: then an idempotent call retried with its Idempotency-Key is told the first
    attempt's outcome is pending (409), never run twice. nameko has already logged the fault with its traceback for
    the operator, and the metrics count it as an error (``contracts.errors.is_fault``); the caller gets no SQL or
    driver text."""
    if exc_info is None or not is_database_unavailable(exc_info[1]):
        return exc_info
    refusal = ServiceUnavailable(DATABASE_UNAVAILABLE, "The service could not reach its database just now; try "
                                                       "again.")
    log.warning("%s.%s: answered %s (%s)", worker_ctx.container.service_name, worker_ctx.entrypoint.method_name,
                DATABASE_UNAVAILABLE, type(exc_info[1]).__name__)
    return (ServiceUnavailable, refusal, None)


def rpc(fn=None, **kwargs):
    # a replayed answer is an outcome, not a fault: logged in one line, like a refusal
    kwargs.setdefault("expected_exceptions", (CredenceError, StoredAnswer))
    if fn is None:
        return IdempotentRpc.decorator(**kwargs)
    return IdempotentRpc.decorator(**kwargs)(fn)


class ExpectedErrorFilter(logging.Filter):
    """Drops the traceback nameko attaches to expected errors: a refusal is not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("(expected)"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install_log_filters() -> None:
    logging.getLogger("nameko.containers").addFilter(ExpectedErrorFilter())


class ActorKeys(DependencyProvider):
    """Reads ``ACTOR_VERIFY_KEYS`` at container start and hands the public keys to ``actors.as_actor``, the
    one place that checks a signed actor. Without usable keys the service still starts (its health and the
    calls that take no actor work) but refuses every actor: fail closed, and said loudly in the log."""

    def setup(self):
        spec = self.container.config.get("ACTOR_VERIFY_KEYS")
        try:
            verifier = ActorVerifier.from_spec(spec or "")
        except KeySpecError as problem:
            log.error("%s: ACTOR_VERIFY_KEYS: %s; every call that acts for someone will be refused",
                      self.container.service_name, problem)
            verifier = None
        else:
            log.info("%s: accepting actors signed with key(s) %s", self.container.service_name,
                     ", ".join(verifier.key_ids))
        actors.configure_verifier(verifier)


class HealthCheck:
    """Mixed into every service: ``health`` answers once the service consumes its RPC queue, which
    is what "started" means to a caller (the launcher and the gateway's /ready use it). It also gives
    every worker its correlation id (credence_common/observability/logs.py) and installs the keys that vouch for
    actors."""

    correlation = CorrelationContext()
    actor_keys = ActorKeys()
    # given by the service class it is mixed into (annotations only: nameko sees no attribute here)
    name: str
    db: Any

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}

    @timer(interval=IDEMPOTENCY_PRUNE_INTERVAL_SECONDS)
    def prune_idempotency_records(self) -> None:
        """Deletes ``Idempotency-Key`` records past ``IDEMPOTENCY_RECORD_TTL_HOURS`` (every service has ``db``).
        Safe with several replicas: each deletes what is expired, and a row is deleted once between them."""
        with self.db.transaction() as session:
            pruned = prune(session, utcnow(), self.db.idempotency_ttl)
        if pruned:
            log.info("%s: pruned %d expired idempotency records", self.name, pruned)
