"""Rows a transaction only ever adds and never reads back: the outbox, the inbox, verification's event log.

As ORM objects each cost the unit of work's bookkeeping (an instance state, a place in the flush plan, its key
fetched back), which was most of the ORM flush while issuing in bulk: a batch of 200 payments wrote 200 outbox
and 200 inbox rows beside the certificates it changed (py-spy, docs/performance.md "Late night, 2026-12-06"). ``append``
instead keeps the row's values on the session; they go to the database as one ``INSERT`` per table (Core, the
column types applied as for any insert) when the session next flushes on its own account: before any query it
runs (so a query in the same transaction sees them, as autoflush would have shown the objects) and at commit.
The ORM's own objects are flushed first, so an appended row may name a row added in the same transaction.
A rollback forgets them with the rest of the transaction. Every row appended to a table names the same columns
(one statement inserts them all, in the order appended: the outbox's order is the order events leave in).
Not for rows added inside a savepoint: rolling the savepoint back would not take them back.
"""

from __future__ import annotations

from sqlalchemy import event, insert
from sqlalchemy.orm import ORMExecuteState, Session

APPENDED = "credence.appended_rows"  # session.info: {table: [row values, in the order appended]}


def append(session: Session, model, **values) -> None:
    """Adds a row of ``model``'s table to the current transaction, after those appended before it."""
    rows = session.info.setdefault(APPENDED, {}).setdefault(model.__table__, [])
    if rows and rows[0].keys() != values.keys():
        raise ValueError(f"rows appended to {model.__table__.name} name the same columns: {sorted(rows[0])} "
                         f"then {sorted(values)}")
    rows.append(values)


def pending(session: Session) -> int:
    """How many appended rows have not reached the database yet (for tests)."""
    return sum(len(rows) for rows in session.info.get(APPENDED, {}).values())


def write_appended(session: Session) -> None:
    appended = session.info.pop(APPENDED, None)
    if not appended:
        return
    session.flush()  # the ORM's rows first: an appended row may refer to one of them
    connection = session.connection()
    for table, rows in appended.items():
        connection.execute(insert(table), rows)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_appended(session)


@event.listens_for(Session, "do_orm_execute")
def _before_query(state: ORMExecuteState) -> None:
    if state.session.autoflush and APPENDED in state.session.info:
        write_appended(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction) -> None:
    # The outermost transaction committed (written by then), rolled back or closed: nothing may reach the next
    # one. The end of a savepoint (see above), or of the inner transaction every flush runs in, leaves them.
    if transaction.parent is None:
        session.info.pop(APPENDED, None)
