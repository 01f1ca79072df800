"""Which failures of a service's database its callers see as a "try again" (503 database_unavailable) rather than
a crash (502): credence_common/bus/entrypoints.py ``database_fault_as_refusal``."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from credence_common.bus.entrypoints import database_fault_as_refusal
from credence_common.contracts.errors import Conflict, ServiceUnavailable

WORKER = SimpleNamespace(container=SimpleNamespace(service_name="probe"),
                         entrypoint=SimpleNamespace(method_name="call"))


def as_exc_info(error: BaseException):
    return (type(error), error, None)


class ServerError(Exception):
    """What psycopg2 raises for an error the server sent: its SQLSTATE in ``pgcode`` (read-only on psycopg2's
    own classes, hence this stand-in)."""

    def __init__(self, message: str, pgcode: str | None):
        super().__init__(message)
        self.pgcode = pgcode


def sqlite_error(message: str) -> Exception:
    return sqlite3.OperationalError(message)


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, ServerError("terminating connection due to administrator command", "57P01")),
    OperationalError("SELECT 1", {}, ServerError("canceling statement due to statement timeout", "57014")),
    OperationalError("SELECT 1", {}, ServerError("could not obtain lock on row", "55P03")),
    OperationalError("SELECT 1", {}, ServerError("sorry, too many clients already", "53300")),
    OperationalError("SELECT 1", {}, ServerError("server closed the connection unexpectedly", None)),
    OperationalError("INSERT", {}, sqlite_error("database is locked")),
    PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
    DBAPIError("SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True),
])
def test_a_lost_or_timed_out_database_is_a_try_again_with_no_driver_text(error):
    kind, refusal, _traceback = database_fault_as_refusal(WORKER, as_exc_info(error))
    assert kind is ServiceUnavailable and refusal.code == "database_unavailable"
    assert "SELECT" not in refusal.message and "connection unexpectedly" not in refusal.message


@pytest.mark.parametrize("error", [
    IntegrityError("INSERT", {}, Exception("duplicate key")),  # a bug or a race the use case maps itself
    OperationalError("UPDATE", {}, ServerError("deadlock detected", "40P01")),  # a conflict: db.py answers 409
    OperationalError("SELECT", {}, ServerError("statement is too complex", "54001")),  # no retry cures it
    OperationalError("SELEC 1", {}, sqlite_error('near "SELEC": syntax error')),  # a bug, on SQLite too
    OperationalError("SELECT", {}, sqlite_error("no such table: certificates")),  # a missing migration
    ProgrammingError("SELEC 1", {}, Exception("syntax error")),  # a bug: stays a 502 for the operator
    Conflict("concurrent_change", "Try again."),
    ValueError("not a database fault"),
])
def test_other_failures_are_left_as_they_are(error):
    exc_info = as_exc_info(error)
    assert database_fault_as_refusal(WORKER, exc_info) is exc_info


def test_a_success_stays_a_success():
    assert database_fault_as_refusal(WORKER, None) is None
