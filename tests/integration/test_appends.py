"""Rows appended with Core instead of added as ORM objects (credence_common/persistence/appends.py: the outbox, the
inbox,
verification's event log), on SQLite and PostgreSQL: written at commit in the order appended, seen by a query
in the same transaction, after the ORM rows they name, and gone with a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from credence_common.persistence import appends
from credence_common.persistence.db import make_engine


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    parent_id: Mapped[str] = mapped_column(String(20), primary_key=True)


class Entry(Base):
    """Like the outbox: a serial key, the order rows were written in."""
    __tablename__ = "entries"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[str] = mapped_column(ForeignKey("parents.parent_id"), nullable=False)
    name: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


@pytest.fixture
def engine(databases):
    engine = make_engine(databases.create("appends", revision=None))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def names_in_order(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Entry.name).order_by(Entry.seq)))


def test_appended_rows_are_written_at_commit_in_the_order_appended_after_the_orm_rows_they_name(engine):
    with Session(engine) as session, session.begin():
        session.add(Parent(parent_id="p1"))  # not flushed yet: the appended rows must follow it
        for name in ("c", "a", "b", "e", "d"):
            appends.append(session, Entry, parent_id="p1", name=name)
        assert appends.pending(session) == 5
    assert names_in_order(engine) == ["c", "a", "b", "e", "d"]
    with Session(engine) as session:
        assert set(session.scalars(select(Entry.attempts))) == {0}  # the column's default, as an insert gives


def test_a_query_in_the_same_transaction_sees_the_rows_appended_before_it(engine):
    with Session(engine) as session, session.begin():
        session.add(Parent(parent_id="p1"))
        appends.append(session, Entry, parent_id="p1", name="first")
        assert session.scalar(select(func.count()).select_from(Entry)) == 1
        assert appends.pending(session) == 0
        appends.append(session, Entry, parent_id="p1", name="second")
    assert names_in_order(engine) == ["first", "second"]


def test_a_rollback_forgets_the_appended_rows_and_the_next_transaction_writes_only_its_own(engine):
    with Session(engine) as session:
        with session.begin():
            session.add(Parent(parent_id="p1"))
        session.begin()
        appends.append(session, Entry, parent_id="p1", name="rolled-back")
        session.rollback()
        assert appends.pending(session) == 0
        with session.begin():
            appends.append(session, Entry, parent_id="p1", name="kept")
    assert names_in_order(engine) == ["kept"]


def test_a_failing_appended_row_fails_the_commit_and_keeps_nothing_of_the_transaction(engine):
    with Session(engine) as session, session.begin():
        session.add(Parent(parent_id="p1"))
        appends.append(session, Entry, parent_id="p1", name="taken")
    with Session(engine) as session:
        with pytest.raises(IntegrityError), session.begin():
            session.add(Parent(parent_id="p2"))
            appends.append(session, Entry, parent_id="p2", name="new")
            appends.append(session, Entry, parent_id="p2", name="taken")  # a duplicate, as a redelivered event's
        assert appends.pending(session) == 0
    assert names_in_order(engine) == ["taken"]
    with Session(engine) as session:
        assert list(session.scalars(select(Parent.parent_id))) == ["p1"]


def test_rows_of_one_table_must_name_the_same_columns(engine):
    with Session(engine) as session, session.begin():
        session.add(Parent(parent_id="p1"))
        appends.append(session, Entry, parent_id="p1", name="a")
        with pytest.raises(ValueError, match="name the same columns"):
            appends.append(session, Entry, parent_id="p1", name="b", attempts=2)


def test_an_explicit_flush_before_commit_keeps_the_rows_appended_after_it_and_before_it(engine):
    # every flush runs in an inner transaction of its own; its end is not the transaction's
    with Session(engine) as session, session.begin():
        session.add(Parent(parent_id="p1"))
        appends.append(session, Entry, parent_id="p1", name="before")
        session.flush()
        appends.append(session, Entry, parent_id="p1", name="after")
        session.add(Parent(parent_id="p2"))
        session.flush()
    assert names_in_order(engine) == ["before", "after"]
