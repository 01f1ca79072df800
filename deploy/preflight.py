"""Before the tests: RabbitMQ (with its management API, which nameko's test fixtures use) and
PostgreSQL must answer. Says what to start when they do not."""

from __future__ import annotations

import os
import sys

import requests

from deploy.platform import broker_problem

AMQP_URI = os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("RABBIT_CTL_URI", "http://guest:guest@127.0.0.1:15672")
POSTGRES_URI = os.environ.get("CREDENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_problem(uri: str) -> str | None:
    from sqlalchemy import create_engine, text

    from credence_common.persistence.db import normalise_db_uri

    try:
        engine = create_engine(normalise_db_uri(uri))
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return (f"PostgreSQL is not reachable at {uri.split('@')[-1]} ({type(exc).__name__}). Start it with "
                "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'.")


def management_problem(url: str) -> str | None:
    try:
        requests.get(url.rstrip("/") + "/api/overview", timeout=3).raise_for_status()
        return None
    except Exception as exc:
        return (f"The RabbitMQ management API does not answer ({type(exc).__name__}); enable it with "
                "'rabbitmq-plugins enable rabbitmq_management'.")


def main() -> int:
    problems = [p for p in (broker_problem(AMQP_URI), management_problem(MANAGEMENT_URL),
                            postgres_problem(POSTGRES_URI)) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
