"""Each service's migrations build exactly the schema its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from credence_common.db import make_engine
from credence_common.migrations import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(databases, service):
    db_uri = databases.create(service)  # migrated to head
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    engine = make_engine(db_uri)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = [d for d in compare_metadata(context, metadata)
                           # server defaults exist only in migrations, for rows that predate a column
                           if not (isinstance(d, list) and d and d[0][0] == "modify_default")]
    finally:
        engine.dispose()
    assert differences == [], f"{service}: models and migrations differ: {differences}"
