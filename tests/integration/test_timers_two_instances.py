"""Timers with two instances of a service on one database: every instance runs every timer
(docs/operations.md, "Scaling"), and the work a timer does must still happen once. Two nameko containers of the
same service with the same config, as two replicas would run."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from datetime import timedelta

from nameko.testing.services import entrypoint_waiter
from sqlalchemy import text

from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from services.payments import domain
from services.payments.adapters.sandbox_bank import SandboxBank, sandbox_db_uri
from services.payments.service import PaymentsService
from services.scoring.service import RELEASE_POLL_SECONDS, ScoringService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for
from tests.integration.test_payments import MERCHANT, SIGNING_SEED, awaiting, candidate, dues_of
from tests.integration.test_scoring import STAFF, confirmed, line, sign_off

RESULT_PUBLISHED = "credence.scoring.result_published.v1"
PAYMENT_SUCCEEDED = "credence.payments.payment_succeeded.v1"
TICKETS = [f"1126000000{n:02d}" for n in range(1, 7)]
EXPIRY_TIMER_SECONDS = 10  # PaymentsService.expire_orders
ORDER_TTL_SECONDS = 5  # long enough for the test to pay before the order expires


def waiting_for_a_lock(engine) -> int:
    """How many sessions of the database wait for a lock: in these tests only the two timers take locks while
    the test holds its row (wherever they wait: a timer that did not lock the row first would wait further on,
    in the statement that changes it, and the test would then see what its missing lock does)."""
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )).scalar()


def written(db_uri: str, event_type: str) -> int:
    """How many events of ``event_type`` the service wrote to its outbox (published or not: the outbox keeps
    them). The count that must be exactly one per effect; what reaches the broker is at least once (on SQLite,
    where one process per database file is supported, the two containers' relays may both publish a row)."""
    return query(db_uri, "select count(*) from outbox where event_type = :type", type=event_type)[0][0]


@contextmanager
def held_until_both_wait(db_uri: str, table: str, key_column: str, key: str, state_column: str, state: str):
    """On PostgreSQL: holds the row of ``table`` whose ``key_column`` is ``key`` (asserting its ``state_column``
    is still ``state``) until both instances' timers wait for a lock (pg_stat_activity lists them waiting: for
    this row, in the timer's ``SELECT ... FOR UPDATE``), then lets go: the two timers reach the row at the same
    moment, and one must find the other's work done. The block runs while the row is held."""
    engine = make_engine(db_uri)
    try:
        with engine.connect() as holder:
            assert holder.execute(text(f"SELECT {state_column} FROM {table} WHERE {key_column} = :key FOR UPDATE"),
                                  {"key": key}).scalar() == state
            yield
            wait_for(lambda: waiting_for_a_lock(engine) == 2, timeout=40,
                     what=f"both instances' timers waiting for the row of {table}")
            holder.rollback()
    finally:
        engine.dispose()


def both_timers_ran_twice_more(containers, method_name: str, interval: float) -> None:
    """Returns once each container's timer ``method_name`` has completed two more runs, so that at least one
    whole run of each began after this was called."""
    ticks = {id(container): 0 for container in containers}

    def count(container):
        def done(worker_ctx, result, exc_info) -> bool:
            ticks[id(container)] += 1
            return ticks[id(container)] >= 2
        return done

    with ExitStack() as stack:
        for container in containers:
            stack.enter_context(entrypoint_waiter(container, method_name, callback=count(container),
                                                  timeout=4 * interval + 30))


def test_a_scheduled_release_is_published_once_with_two_instances_running_its_timer(start_service, container_factory,
                                                                                    databases, event_spy):
    first, config = start_service(ScoringService)
    second = container_factory(ScoringService, config)  # a second replica: the same database, the same queues
    second.start()
    db, amqp = config["DB_URI"], config["AMQP_URI"]
    for n, ticket in enumerate(TICKETS):
        publish_event(amqp, confirmed(ticket, f"cand-{n}"))
    wait_for(lambda: query(db, "select count(*) from roster") == [(len(TICKETS),)], what="roster")
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line(t, 50 + n * 5) for n, t in enumerate(TICKETS)]})
        sign_off(scoring)
    spy = event_spy("scoring", RESULT_PUBLISHED)
    with rpc_proxy("scoring", config) as scoring:
        scheduled = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
                                                    "publish_at": (utcnow() + timedelta(seconds=4)).isoformat()})
    assert scheduled["state"] == "scheduled" and scheduled["published"] == 0

    if databases.backend == "postgresql":
        # one publishes; the other must find the release published (publish_due_releases: FOR UPDATE, state =
        # 'scheduled')
        with held_until_both_wait(db, "releases", "release_id", scheduled["release_id"], "state", "scheduled"):
            pass
    # (on SQLite both containers share one process, whose transactions on a file never interleave: the two timers
    # run one after the other; a second process on one SQLite file is not supported, docs/architecture.md)

    wait_for(lambda: query(db, "select state, published from releases") == [("published", len(TICKETS))],
             timeout=30, what="the release published")
    published: set[str] = set()
    while len(published) < len(TICKETS):  # each result's event arrives (a copy of one may too: see written())
        published.update(event["data"]["result_id"] for event in spy.collect(1))
    assert published == {row[0] for row in query(db, "select result_id from exam_results")}

    # both timers have run since: every result was published once, and its event written once
    both_timers_ran_twice_more((first, second), "publish_due_releases", RELEASE_POLL_SECONDS)
    assert query(db, "select count(*), count(distinct result_id) from result_audit where action = 'published'") == [
        (len(TICKETS), len(TICKETS))]
    assert query(db, "select count(*) from exam_results where published_at is null") == [(0,)]
    assert written(db, RESULT_PUBLISHED) == len(TICKETS)
    if databases.backend == "postgresql":  # one relay publishes at a time: nothing more reached the broker
        assert spy.drain(db) == []


def test_an_expired_order_whose_payment_was_lost_is_credited_once_with_two_instances_running_the_timer(
        start_service, container_factory, databases, event_spy):
    """Money: expire_orders asks the provider before it ends an unpaid order, and credits a payment whose
    notification never came. Two instances expiring the same order must credit it once: one
    payment_succeeded event, one provider payment, the due paid, no refusal recorded."""
    first, config = start_service(PaymentsService, PAYMENT_ORDER_TTL_SECONDS=ORDER_TTL_SECONDS)
    second = container_factory(PaymentsService, config)
    second.start()
    db, amqp = config["DB_URI"], config["AMQP_URI"]
    bank = SandboxBank(sandbox_db_uri(None, db), domain.load_private_key(SIGNING_SEED))
    try:
        publish_event(amqp, awaiting("cert-1"))
        [due] = dues_of(config, candidate(), "candidate", "cand-1", 1)
        spy = event_spy("payments", PAYMENT_SUCCEEDED)
        with rpc_proxy("payments", config) as payments:
            number = payments.create_order(candidate(), {"due_ids": [due["due_id"]]}, "two-timers")["order_number"]
        if databases.backend == "postgresql":
            # one credits the payment it finds at the provider; the other must find the order paid (expire_order:
            # FOR UPDATE, status = 'created')
            with held_until_both_wait(db, "payment_orders", "order_number", number, "status", "created"):
                bank.pay(MERCHANT, number)  # paid, but the notification never arrives
        else:  # one process: the two timers' transactions run one after the other (see the test above)
            bank.pay(MERCHANT, number)
        wait_for(lambda: query(db, "select status from payment_orders") == [("paid",)],
                 timeout=EXPIRY_TIMER_SECONDS + ORDER_TTL_SECONDS + 30, what="the order credited by the timer")
        [event] = spy.collect(1)
        assert (event["data"]["order_number"], event["data"]["due_id"]) == (number, due["due_id"])
        both_timers_ran_twice_more((first, second), "expire_orders", EXPIRY_TIMER_SECONDS)
        assert written(db, PAYMENT_SUCCEEDED) == 1
        if databases.backend == "postgresql":
            assert spy.drain(db) == []
        assert query(db, "select order_number, source from provider_payments") == [(number, "query")]
        assert query(db, "select status, paid_order_number from payment_dues") == [("paid", number)]
        assert query(db, "select code from payment_incidents") == []
    finally:
        bank.close_engine()
