"""Counters for human-facing numbers on a real database: the hot-path variant takes its value in a transaction
of its own, so a second caller never waits for the first caller's transaction to end."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from credence_common.persistence.db import make_engine
from credence_common.persistence.sequences import next_value, next_value_outside, next_values_outside
from services.certificates.models import NumberSequence


@pytest.fixture
def certificates_db(databases):
    engine = make_engine(databases.create("certificates"))
    yield engine
    engine.dispose()


def test_a_second_caller_does_not_wait_for_the_firsts_transaction(certificates_db):
    first, second = Session(certificates_db), Session(certificates_db)
    try:
        first.begin()
        assert next_value_outside(first, NumberSequence, "serial-test") == 1  # first's transaction stays open
        second.begin()
        if certificates_db.dialect.name == "postgresql":
            second.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail here instead of hanging
            assert next_value_outside(second, NumberSequence, "serial-test") == 2
            # whereas a value taken inside a transaction keeps the row locked until that transaction ends
            assert next_value(second, NumberSequence, "serial-test") == 3
            with Session(certificates_db) as third:
                third.execute(text("SET LOCAL lock_timeout = '300ms'"))
                with pytest.raises(DBAPIError, match="lock timeout"):
                    next_value(third, NumberSequence, "serial-test")
                third.rollback()
        first.rollback()  # a value handed out is not taken back: the counters accept gaps
        second.rollback()
        with Session(certificates_db) as fresh, fresh.begin():
            # PostgreSQL: 1 and 2 were committed on their own (gaps are accepted), 3 was rolled back with second
            expected = 3 if certificates_db.dialect.name == "postgresql" else 1
            assert next_value_outside(fresh, NumberSequence, "serial-test") == expected
    finally:
        first.close()
        second.close()


def test_a_batch_takes_a_block_of_consecutive_values_in_one_statement(certificates_db):
    with Session(certificates_db) as session, session.begin():
        assert next_values_outside(session, NumberSequence, "serial-block", 3) == [1, 2, 3]  # a new counter
        assert next_value_outside(session, NumberSequence, "serial-block") == 4
        assert next_values_outside(session, NumberSequence, "serial-block", 50) == list(range(5, 55))
        assert next_values_outside(session, NumberSequence, "other-region", 2) == [1, 2]  # counters are separate
    with Session(certificates_db) as session, session.begin():
        assert next_value(session, NumberSequence, "serial-block") == 55


def test_concurrent_callers_never_get_the_same_value(certificates_db):
    """Eight threads, each with its own connection, take 20 values each from one counter, half in the caller's
    transaction (``next_value``, as ticket numbers are taken) and half in one of their own
    (``next_value_outside``, as certificate serials are on PostgreSQL): no value is handed out twice."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.exc import OperationalError

    def take(worker: int) -> list[int]:
        values = []
        while len(values) < 20:
            try:
                with Session(certificates_db) as session, session.begin():
                    take_one = next_value_outside if len(values) % 2 else next_value
                    value = take_one(session, NumberSequence, "serial-race")
            except OperationalError as busy:  # SQLite: the single writer lock was not free in time; try again
                assert "locked" in str(busy), busy
                continue
            values.append(value)  # committed: it is this caller's
        return values

    with Session(certificates_db) as session, session.begin():
        next_value(session, NumberSequence, "serial-race")  # the counter exists before the race
    with ThreadPoolExecutor(8) as pool:
        taken = [value for values in pool.map(take, range(8)) for value in values]
    assert len(taken) == 160 and len(set(taken)) == 160, sorted(taken)
