"""What a ``postgresql://`` URI becomes: psycopg2, with the URI's libpq parameters and the connection defences
(credence_common/persistence/db.py). Nothing here connects: the engine's ``do_connect`` hook shows what would reach
``psycopg2.connect``, and libpq's own parser (``parse_dsn``) reads it back."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn
from sqlalchemy import event

from credence_common.persistence.db import make_engine, normalise_db_uri


class _Captured(Exception):
    pass


def _what_reaches_the_driver(uri: str) -> dict:
    engine = make_engine(uri)
    seen = {}

    @event.listens_for(engine, "do_connect")
    def _capture(dialect, conn_rec, cargs, cparams):
        assert dialect.dbapi is psycopg2 and not cargs
        seen.update(cparams)
        raise _Captured

    with pytest.raises(_Captured):
        engine.connect()
    engine.dispose()
    return seen


def test_postgresql_uris_are_driven_by_psycopg2_with_their_query_string_kept():
    assert normalise_db_uri("postgresql://u:p@h:5432/d?sslmode=require") == \
        "postgresql+psycopg2://u:p@h:5432/d?sslmode=require"
    assert normalise_db_uri("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert normalise_db_uri("sqlite:///var/x.sqlite") == "sqlite:///var/x.sqlite"


def test_the_uris_libpq_parameters_reach_the_driver():
    """The sentence in docs/operations.md and deploy/k8s/README.md: TLS to PostgreSQL is set in the URI."""
    params = _what_reaches_the_driver(
        "postgresql://scoring:secret@db.example:6432/scoring?sslmode=verify-full"
        "&sslrootcert=/etc/credence/pg-ca.pem&sslcert=/etc/credence/scoring.crt&sslkey=/etc/credence/scoring.key"
        "&application_name=scoring&options=-c%20statement_timeout%3D5000")
    libpq = parse_dsn(make_dsn(**params))  # libpq's parser refuses any name it does not know
    assert {key: libpq[key] for key in ("host", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
                                       "sslcert", "sslkey", "application_name")} == {
        "host": "db.example", "port": "6432", "dbname": "scoring", "user": "scoring", "password": "secret",
        "sslmode": "verify-full", "sslrootcert": "/etc/credence/pg-ca.pem", "sslcert": "/etc/credence/scoring.crt",
        "sslkey": "/etc/credence/scoring.key", "application_name": "scoring"}
    # the URI's own options are kept beside the idle-in-transaction defence
    assert libpq["options"] == "-c statement_timeout=5000 -c idle_in_transaction_session_timeout=60000"


def test_every_connection_carries_the_defences(monkeypatch):
    monkeypatch.setenv("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "45")
    monkeypatch.setenv("DB_SOCKET_TIMEOUT_SECONDS", "120")
    libpq = parse_dsn(make_dsn(**_what_reaches_the_driver("postgresql://app@db.example/identity")))
    assert libpq["options"] == "-c idle_in_transaction_session_timeout=45000"
    assert libpq["tcp_user_timeout"] == "120000"
    assert (libpq["keepalives"], libpq["keepalives_idle"], libpq["keepalives_interval"],
            libpq["keepalives_count"]) == ("1", "60", "10", "6")


def test_a_flushs_many_updates_go_to_psycopg2_in_pages_not_row_by_row():
    from sqlalchemy.dialects.postgresql.psycopg2 import EXECUTEMANY_VALUES_PLUS_BATCH

    engine = make_engine("postgresql://u@h/d")
    # INSERTs as multi-row VALUES (SQLAlchemy's default), UPDATEs and DELETEs through execute_batch
    assert engine.dialect.executemany_mode is EXECUTEMANY_VALUES_PLUS_BATCH
    engine.dispose()


def test_a_uri_naming_a_primary_and_its_standby_reaches_libpq_as_a_host_list(monkeypatch):
    """docs/operations.md, "Running on PostgreSQL with a streaming standby": both servers in one URI, and libpq keeps
    the one that accepts writes (the fault suite's failover uses it: tests/faults/standby.py). (As a blocking
    process sees it: a green one tries the hosts one at a time, tests/integration/test_db_failover.py.)"""
    monkeypatch.setattr("credence_common.persistence.db.is_green", lambda: False)
    params = _what_reaches_the_driver(
        "postgresql://scoring:secret@/scoring?host=pg-a.example:5432&host=pg-b.example:5433"
        "&target_session_attrs=read-write&connect_timeout=5")
    libpq = parse_dsn(make_dsn(**params))
    assert {key: libpq[key] for key in ("host", "port", "dbname", "target_session_attrs", "connect_timeout")} == {
        "host": "pg-a.example,pg-b.example", "port": "5432,5433", "dbname": "scoring",
        "target_session_attrs": "read-write", "connect_timeout": "5"}
    assert libpq["options"] == "-c idle_in_transaction_session_timeout=60000"  # the defences too
