"""Several replicas of a service share its outbox: on PostgreSQL one relays at a time (an advisory lock held
for the round), so an event is not published twice by two replicas and events leave in the order written."""

from __future__ import annotations

from credence_common.bus.outbox_relay import relay_turn
from credence_common.persistence.db import make_engine


def test_one_replica_of_a_service_relays_at_a_time(databases):
    engine = make_engine(databases.create("payments"))
    try:
        with relay_turn(engine, "payments") as first:
            with relay_turn(engine, "payments") as second, relay_turn(engine, "scoring") as other_service:
                assert first is True and other_service is True
                # SQLite has one process per database file, so there is no one to wait for
                assert second is (databases.backend == "sqlite")
        with relay_turn(engine, "payments") as after:
            assert after is True  # the round ended: the turn is free again
    finally:
        engine.dispose()
