"""Alembic migrations, one history per service, each applied to that service's own database.

    python -m credence_common.persistence.migrations identity sqlite:///var/identity.sqlite
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from credence_common.persistence.db import make_engine

SERVICES = ("identity", "scoring", "certificates", "payments", "verification")


def alembic_config(service: str) -> Config:
    package = importlib.import_module(f"services.{service}")
    script_location = Path(package.__file__).parent / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


def upgrade(service: str, db_uri: str, revision: str = "head") -> None:
    config = alembic_config(service)
    engine = make_engine(db_uri)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # SQLite changes a table by copying it and dropping the old one; with foreign keys enforced
                # that drop fails as soon as another table points at a row. Off for the migration (the pragma
                # only works outside a transaction), and checked in full before it commits.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"{service}: the migration left rows pointing nowhere: {broken[:5]}")
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    finally:
        engine.dispose()


def run_env(target_metadata) -> None:
    """Body of every service's ``migrations/env.py``."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through credence_common.persistence.migrations.upgrade")
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def db_uri_from_environment(service: str, environ=None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(f"{service.upper()}_DB_URI", f"sqlite:///var/{service}.sqlite")


def main(argv: list[str]) -> int:
    """``all`` migrates every service's database named by ``<SERVICE>_DB_URI`` (default: SQLite under var/)."""
    if argv == ["all"]:
        for service in SERVICES:
            upgrade(service, db_uri_from_environment(service))
            print(f"{service}: migrated")
        return 0
    if len(argv) != 2 or argv[0] not in SERVICES:
        print(f"usage: python -m credence_common.persistence.migrations all | {{{','.join(SERVICES)}}} DB_URI",
              file=sys.stderr)
        return 2
    upgrade(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
