"""Statements that PostgreSQL parses and plans once per connection, then runs by name.

psycopg2 sends every statement as text, so the server parses and plans it on every execution, and SQLAlchemy
compiles parameters and builds an execution context for it in Python each time. For the busiest statement of the
platform (a public check's look-up) that was most of the database time of a lone check: the look-up took 0.39-0.44
ms through SQLAlchemy Core, 0.27-0.28 ms as plain psycopg2, and 0.15 ms as ``EXECUTE`` of a prepared statement
(docs/performance.md "Night, 2026-12-06"). ``PreparedStatement`` runs a Core statement as ``PREPARE``/``EXECUTE``
on PostgreSQL, and as itself on SQLite (which caches its statements on its own).

A prepared statement has a fixed number of parameters, so a list parameter is one array (``any_of_array``)
rather than an expanding ``IN`` (``in_list``, what SQLite runs); a statement with an expanding parameter is
refused when it is first prepared. Build a statement with each (``postgresql=``) when it must also run on
SQLite.

A connection remembers what it has prepared (in the pool's record of it, which lives as long as the connection).
If the server no longer knows the statement (``DEALLOCATE``, a pooler's ``DISCARD ALL``) or a migration changed
the columns it returns ("cached plan must not change result type"), it is prepared again and the statement runs
once more (``tests/integration/test_prepared_statements.py``). Meant for autocommit connections
(``UnitOfWork.autocommit``), where a failed statement leaves nothing to roll back.
"""

from __future__ import annotations

import re

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError

PREPARED = "credence.prepared_statements"  # key in the pool's per-connection info: the names prepared there
PARAMETER = re.compile(r"%\((\w+)\)s")  # psycopg2's pyformat placeholders, as SQLAlchemy renders them
# sqlstates after which preparing again helps: the statement is unknown, or its result changed shape
STALE = {"26000", "0A000"}


def in_list(column, name: str):
    """``column IN (:name...)``, the list expanded into one parameter per item (a statement for SQLite)."""
    return column.in_(bindparam(name, expanding=True))


def any_of_array(column, name: str):
    """``column = ANY(:name)``, the list as one array parameter (a statement PostgreSQL prepares)."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


class PreparedStatement:
    def __init__(self, name: str, statement, postgresql=None):
        if not name.isidentifier():
            raise ValueError(f"a prepared statement's name is an SQL identifier, not {name!r}")
        self.name = name
        self.statement = statement
        self.postgresql = statement if postgresql is None else postgresql
        self._sql: tuple[str, str, dict] | None = None

    def execute(self, connection: Connection, parameters: dict | list[dict]) -> CursorResult:
        """The statement's result, as ``connection.execute(statement, parameters)`` gives it (rows by column
        name); a list of parameter sets runs it once per set (psycopg2's batches: a round trip per 100)."""
        if connection.dialect.name != "postgresql":
            return connection.execute(self.statement, parameters)
        prepare, run, constants = self._sql or self._compile(connection.dialect)
        arguments = ([{**constants, **each} for each in parameters] if isinstance(parameters, list)
                     else {**constants, **parameters})
        prepared = connection.connection.info.setdefault(PREPARED, set())
        if self.name not in prepared:
            self._prepare(connection, prepared, prepare)
        try:
            return connection.exec_driver_sql(run, arguments)
        except DBAPIError as error:
            if getattr(error.orig, "pgcode", None) not in STALE:
                raise
        # Stale: forget the old plan (if the server still has it) and prepare the statement again, once.
        try:
            connection.exec_driver_sql(f"DEALLOCATE {self.name}")
        except DBAPIError:
            pass  # already gone
        self._prepare(connection, prepared, prepare)
        return connection.exec_driver_sql(run, arguments)

    def _prepare(self, connection: Connection, prepared: set, prepare: str) -> None:
        prepared.discard(self.name)
        connection.exec_driver_sql(prepare)
        prepared.add(self.name)

    def _compile(self, dialect) -> tuple[str, str, dict]:
        """``PREPARE name AS <the statement with $1..$n>``, ``EXECUTE name(%(a)s, ...)`` and the values the
        statement carries itself (a literal list such as ``outcome IN ('no_match', 'rate_limited')``)."""
        compiled = self.postgresql.compile(dialect=dialect)
        binds = compiled.binds
        open_lists = [name for name, bind in binds.items() if bind.expanding and bind.value is None]
        if open_lists:
            raise ValueError(f"{self.name}: a prepared statement takes a list as one array parameter "
                             f"(any_(bindparam(..., type_=ARRAY(...)))), not an expanding IN: {open_lists}")
        # Values for the parameters the caller gives, so that the literal lists can be rendered one by one
        placeholders = {name: None for name, bind in binds.items() if bind.value is None and bind.callable is None}
        expanded = compiled.construct_expanded_state(placeholders)
        names = list(dict.fromkeys(PARAMETER.findall(expanded.statement)))
        # a literal % stays doubled: exec_driver_sql always hands psycopg2 parameters, so it formats the text
        body = PARAMETER.sub(lambda match: f"${names.index(match.group(1)) + 1}", expanded.statement)
        constants = {name: value for name, value in expanded.parameters.items()
                     if name in names and name not in placeholders}
        self._sql = (f"PREPARE {self.name} AS {body}",
                     f"EXECUTE {self.name} (" + ", ".join(f"%({name})s" for name in names) + ")", constants)
        return self._sql
