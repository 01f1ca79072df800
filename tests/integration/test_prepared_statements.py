"""Statements PostgreSQL prepares once per connection (credence_common/persistence/prepared.py), on the public check's
own
statements: the same rows as the Core statement, prepared once, and prepared again when the server forgot them
or a migration changed what they return. On SQLite they are the Core statements."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

from bench import honest
from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from credence_common.persistence.prepared import PREPARED, PreparedStatement
from services.verification import usecases
from services.verification.models import VerifiableCertificate

COLUMNS = ("certificate_number", "certificate_id", "holder_name", "holder_name_key", "resident_id_number_masked",
           "program_code", "program_name", "issued_on", "status", "updated_at", "sequence")


@pytest.fixture
def verification_db(databases):
    engine = make_engine(databases.create("verification"))
    rows = [dict(zip(COLUMNS, values, strict=True))
            for values in csv.reader(honest.seed_lines(3, "2026-12-06 12:00:00+00"))]
    for row in rows:
        row.update(issued_on=date.fromisoformat(row["issued_on"]), sequence=int(row["sequence"]),
                   updated_at=datetime.fromisoformat(row["updated_at"] + ":00"))
    with engine.begin() as connection:
        connection.execute(VerifiableCertificate.__table__.insert(), rows)
    yield engine
    engine.dispose()


def in_order(rows) -> list[tuple]:
    return sorted((tuple(row) for row in rows), key=repr)  # NULLs among strings: order by the printed row


def look_up(connection, statement: PreparedStatement) -> list[tuple]:
    numbers = [honest.certificate_number(0), honest.certificate_number(2), "000000000000000"]
    parameters = {"numbers": numbers, "callers": ["a", "b"], "since": utcnow() - timedelta(minutes=1)}
    return in_order(statement.execute(connection, parameters))


def test_a_prepared_statement_answers_as_its_core_statement_and_is_prepared_once_per_connection(verification_db):
    now = utcnow()
    failures = [{"checked_at": now, "certificate_number": honest.certificate_number(0), "outcome": outcome,
                 "client": client, "organisation": None, "purpose": None}
                for outcome, client in (("no_match", "a"), ("rate_limited", "z"), ("no_match", "z"), ("valid", "a"))]
    with verification_db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        usecases.LOG_CHECK.execute(connection, failures)  # a list: one row each
        prepared = look_up(connection, usecases.CERTIFICATES_AND_FAILURES)
        again = look_up(connection, usecases.CERTIFICATES_AND_FAILURES)
        core = in_order(connection.execute(usecases.CERTIFICATES_AND_FAILURES.statement, {
            "numbers": [honest.certificate_number(0), honest.certificate_number(2), "000000000000000"],
            "callers": ["a", "b"], "since": utcnow() - timedelta(minutes=1)}))
        known = connection.connection.info.get(PREPARED)
        on_server = {name for (name,) in connection.exec_driver_sql("SELECT name FROM pg_prepared_statements")} \
            if connection.dialect.name == "postgresql" else set()
    assert prepared == again == core
    kinds = [(row[0], row[1], row[-2], row[-1]) for row in prepared]
    # two certificates found; number 0's failures: one by caller "a", two by somebody else (NULL); "valid" is none
    assert sorted(kind for kind in kinds if kind[0] == "c") == [
        ("c", honest.certificate_number(0), None, None), ("c", honest.certificate_number(2), None, None)]
    assert sorted((kind[2] or "", kind[3]) for kind in kinds if kind[0] == "f") == [("", 2), ("a", 1)]
    if verification_db.dialect.name == "postgresql":
        assert known == on_server == {"verification_log_check", "verification_certificates_and_failures"}
    else:
        assert known is None  # SQLite runs the Core statements


def test_a_statement_the_server_forgot_or_a_migration_changed_is_prepared_again(verification_db):
    if verification_db.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    with verification_db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        first = look_up(connection, usecases.CERTIFICATES_AND_FAILURES)
        connection.exec_driver_sql("DEALLOCATE ALL")  # as a pooler's DISCARD ALL would
        assert look_up(connection, usecases.CERTIFICATES_AND_FAILURES) == first
        # a migration that changes a column the statement returns: "cached plan must not change result type"
        connection.exec_driver_sql("ALTER TABLE verifiable_certificates ALTER COLUMN program_name TYPE text")
        assert look_up(connection, usecases.CERTIFICATES_AND_FAILURES) == first
        assert [name for (name,) in connection.exec_driver_sql("SELECT name FROM pg_prepared_statements")] == [
            "verification_certificates_and_failures"]


def test_a_literal_percent_sign_survives_preparing(verification_db):
    table = VerifiableCertificate.__table__
    anything = PreparedStatement("statuses_like", select(table.c.status).where(
        table.c.program_code.like(literal_column("'%'")), table.c.certificate_number == bindparam("number")))
    with verification_db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert [tuple(row) for row in anything.execute(connection, {"number": honest.certificate_number(1)})] == [
            ("valid",)]


def test_a_list_parameter_of_a_prepared_statement_is_an_array_not_an_expanding_in():
    table = VerifiableCertificate.__table__
    expanding = PreparedStatement("by_numbers", select(table.c.status).where(
        table.c.certificate_number.in_(bindparam("numbers", expanding=True))))
    with pytest.raises(ValueError, match="array parameter"):
        expanding._compile(PGDialect_psycopg2())
    with pytest.raises(ValueError, match="SQL identifier"):
        PreparedStatement("by numbers; drop", select(table.c.status))
