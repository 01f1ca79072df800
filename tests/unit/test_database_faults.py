"""Which failures of a service's database its callers see as a "try again" (503 database_unavailable) rather than
a crash (502): credence_common/bus/entrypoints.py ``database_fault_as_refusal``."""

from __future__ import annotations

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


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, Exception("terminating connection due to idle-in-transaction timeout")),
    PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
    DBAPIError("SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True),
])
def test_a_lost_or_timed_out_database_is_a_try_again_with_no_driver_text(error):
    kind, refusal, _traceback = database_fault_as_refusal(WORKER, as_exc_info(error))
    assert kind is ServiceUnavailable and refusal.code == "database_unavailable"
    assert "SELECT" not in refusal.message and "connection unexpectedly" not in refusal.message


@pytest.mark.parametrize("error", [
    IntegrityError("INSERT", {}, Exception("duplicate key")),  # a bug or a race the use case maps itself
    ProgrammingError("SELEC 1", {}, Exception("syntax error")),  # a bug: stays a 502 for the operator
    Conflict("concurrent_change", "Try again."),
    ValueError("not a database fault"),
])
def test_other_failures_are_left_as_they_are(error):
    exc_info = as_exc_info(error)
    assert database_fault_as_refusal(WORKER, exc_info) is exc_info


def test_a_success_stays_a_success():
    assert database_fault_as_refusal(WORKER, None) is None
