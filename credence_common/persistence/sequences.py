"""Gap-tolerant counters for human-facing numbers (ticket numbers, certificate serials).

The UPDATE takes the row's write lock first, so concurrent workers (or processes, on PostgreSQL)
never hand out the same value. ``next_value`` commits the counter with the record that uses it (ticket
numbers); ``next_value_outside`` and ``next_values_outside`` take it, on PostgreSQL, in a one-statement
transaction of their own (certificate serials), so a record that then fails leaves a gap
(tests/integration/test_sequences.py).
"""

from __future__ import annotations

import weakref

from sqlalchemy import Engine, Integer, String, create_engine, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column


def sequence_model(Base):
    class NumberSequence(Base):
        __tablename__ = "number_sequences"

        name: Mapped[str] = mapped_column(String(60), primary_key=True)
        last_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    return NumberSequence


def next_value(session: Session, model, name: str, count: int = 1) -> int:
    """The next value, or with ``count`` the last of the next ``count`` values (a block for a batch)."""
    for _ in range(3):
        value = session.execute(
            update(model).where(model.name == name).values(last_value=model.last_value + count)
            .returning(model.last_value)
        ).scalar()
        if value is not None:
            return value
        try:
            with session.begin_nested():
                session.execute(insert(model).values(name=name, last_value=count))
            return count
        except IntegrityError:
            continue  # another worker created the counter first; take the next value from it
    raise RuntimeError(f"could not allocate a value from sequence {name}")


def next_values_outside(session: Session, model, name: str, count: int) -> list[int]:
    """``count`` consecutive values in one statement (``next_value_outside`` for a batch): what a batch does not
    use becomes a gap."""
    last = _outside(session, lambda own: next_value(own, model, name, count))
    return list(range(last - count + 1, last + 1))


def next_value_outside(session: Session, model, name: str) -> int:
    """``next_value`` in a short transaction of its own, committed at once (PostgreSQL).

    For counters on a hot path: ``next_value`` holds the counter's row lock until the caller's transaction
    commits, so every caller in every process waits its turn for the whole of someone else's transaction
    (bulk issuing: a few hundred a second at best, whatever the cores). Here the lock lasts one statement.
    The price is a gap when the caller's transaction then fails, which these counters accept. On SQLite the
    caller's transaction may already hold the database's single write lock, so a second connection would
    wait for it: there the value comes from the caller's transaction as before."""
    return _outside(session, lambda own: next_value(own, model, name))


def _outside(session: Session, allocate):
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        return allocate(session)
    with Session(_counter_engine(engine)) as own, own.begin():
        return allocate(own)


_COUNTER_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _counter_engine(engine: Engine) -> Engine:
    """A few connections of their own for these one-statement transactions. Taken from the caller's pool, a
    worker would hold two connections at once: the pool's overflow then opens and closes connections all the
    time (tens of milliseconds each), which cost more than the lock it saves. No overflow here either: a
    caller waits a moment for one of the four. No ping before each use (it would double the round trips): a
    connection that died makes that one caller's transaction fail and be retried, and the pool then reconnects."""
    counters = _COUNTER_ENGINES.get(engine)
    if counters is None:
        from credence_common.persistence.db import postgresql_connect_args

        counters = create_engine(engine.url, pool_size=4, max_overflow=0, pool_timeout=30, hide_parameters=True,
                                 connect_args=postgresql_connect_args(engine.url))
        _COUNTER_ENGINES[engine] = counters
    return counters
