"""Integration fixtures: real RabbitMQ (a fresh vhost per test, from nameko's ``rabbit_config``) and a
real database per service, on SQLite and again on PostgreSQL."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections import Counter
from contextlib import contextmanager

import pytest
from kombu import Connection, Exchange, Producer, Queue
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from credence_common.bus.outbox_relay import event_exchange
from credence_common.contracts.envelope import EventPayload, make_envelope, utcnow
from credence_common.contracts.staff_roles import STAFF_ROLES
from credence_common.persistence.db import make_engine, normalise_db_uri
from credence_common.persistence.migrations import upgrade
from credence_common.security.actor_tokens import ActorSigner, new_key_pair
from deploy.journey import JourneyFailed, wait_until
from tests.fee_seed import seeded_fees

POSTGRES_ADMIN_URI = os.environ.get("CREDENCE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# The services under test accept actors signed with this key (service_config), as they accept the gateway's.
TEST_ACTOR_SIGNING_KEY, TEST_ACTOR_VERIFY_KEYS = new_key_pair("tests")
# a day: module constants (STAFF = signed_actor(...)) are signed once at import and used by many tests
_TEST_ACTOR_SIGNER = ActorSigner.from_spec(TEST_ACTOR_SIGNING_KEY, lifetime_seconds=24 * 3600, issuer="tests")


def signed_actor(actor: dict) -> str:
    """``{"subject", "role"}`` (an institution's with its ``institution_id``) as the gateway sends it: signed
    (credence_common/security/actor_tokens.py). A staff actor holds every staff role unless it names its ``staff_roles``
    (the separation-of-duties rules still tell its subject from others')."""
    staff_roles = actor.get("staff_roles", STAFF_ROLES if actor["role"] == "staff" else None)
    return _TEST_ACTOR_SIGNER.sign(actor["subject"], actor["role"], institution_id=actor.get("institution_id"),
                                   staff_roles=staff_roles)


def signed_batch(actors: list[tuple[str, str]]) -> str:
    """The actors of a batched call as the gateway sends them: one token for all (``ActorSigner.sign_batch``)."""
    return _TEST_ACTOR_SIGNER.sign_batch(actors)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


class Databases:
    """Creates one migrated database per service for a test, on the chosen backend."""

    def __init__(self, backend: str, tmp_path):
        self.backend = backend
        self.tmp_path = tmp_path
        self.created: list[str] = []
        self._admin = None

    def admin(self):
        if self._admin is None:
            self._admin = create_engine(normalise_db_uri(POSTGRES_ADMIN_URI), isolation_level="AUTOCOMMIT")
        return self._admin

    def create(self, service: str, revision: str | None = "head") -> str:
        """A new database for ``service``, migrated to ``revision`` (None: left empty)."""
        if self.backend == "sqlite":
            uri = f"sqlite:///{self.tmp_path / service}.sqlite"
        else:
            name = f"credence_test_{service}_{uuid.uuid4().hex[:10]}"
            with self.admin().connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            self.created.append(name)
            uri = POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
        if revision is not None:
            upgrade(service, uri, revision)
        return uri

    def drop_all(self):
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request, tmp_path):
    dbs = Databases(request.param, tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def service_config(rabbit_config, databases):
    """``service_config("identity")`` -> (config dict for a container, the service's DB URI)."""

    def make(service: str, **overrides) -> dict:
        config = {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "DB_URI": databases.create(service),
            "METRICS_PORT": 0,
            "OUTBOX_POLL_INTERVAL": 0.2,
            "PAYMENT_SANDBOX_SIGNING_KEY": "test-sandbox-signing-key",
            "VERIFICATION_REPORT_SIGNING_KEY": "test-verification-report-key",
            "BOOTSTRAP_STAFF_USERNAME": "admin",
            "BOOTSTRAP_STAFF_PASSWORD": "test-staff-password",
            "IDENTITY_VERIFIER": "sandbox",
            "SMS_ADAPTER": "dev",
            "IDENTITY_DATA_KEYS": "k1=test-identity-data-key",
            "IDENTITY_DATA_ACTIVE_KEY_ID": "k1",
            "IDENTITY_INDEX_KEY": "test-identity-index-key",
            "ACTOR_VERIFY_KEYS": TEST_ACTOR_VERIFY_KEYS,
            "EVENT_RETRY_BASE_SECONDS": 0.1,  # a crossed or failing event is retried within a test's patience
        }
        config.update(overrides)
        return config

    return make


@pytest.fixture
def start_service(container_factory, service_config):
    """Start a service class in a real nameko container; returns (container, config)."""

    def start(service_cls, **overrides):
        config = service_config(service_cls.name, **overrides)
        container = container_factory(service_cls, config)
        container.start()
        return container, config

    return start


def rpc_proxy(service_name: str, config: dict) -> ServiceRpcProxy:
    return ServiceRpcProxy(service_name, {"AMQP_URI": config["AMQP_URI"]}, timeout=30)


def query(db_uri: str, sql: str, **params) -> list:
    engine = make_engine(db_uri)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def wait_for(probe, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    return wait_until(what, probe, timeout=timeout, interval=interval)


# Publishers in tests wait for the broker's confirm, as the outbox relay does: without confirms RabbitMQ
# promises nothing about a message, and a test that lost one would wait for it in vain.
CONFIRMED = {"confirm_publish": True}


def publish_event(amqp_uri: str, payload: EventPayload, envelope=None) -> dict:
    """Publish an event as its publisher's relay would; returns the envelope as sent."""
    envelope = envelope or make_envelope(payload)
    body = envelope.model_dump_json()
    with Connection(amqp_uri, transport_options=CONFIRMED) as connection:
        producer = Producer(connection.channel(), exchange=event_exchange(payload.publisher))
        producer.publish(body, routing_key=payload.event_type, content_type="application/json",
                         content_encoding="utf-8", delivery_mode=2, declare=[event_exchange(payload.publisher)])
    return json.loads(body)


# The routing keys of drain's markers (EventSpy.drain): no subscriber binds them, every spy ignores them.
SPY_MARKER_PREFIX = "credence-test.spy-marker."


class EventSpy:
    """A queue bound to a publisher's exchange that collects what the relay publishes.

    ``collect(n)`` waits until n events arrived. ``drain(outbox_db)`` proves a negative, "nothing (more) was
    published", by a positive signal instead of a pause (see its docstring)."""

    def __init__(self, amqp_uri: str, publisher: str, event_type: str = "#"):
        self.publisher = publisher
        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        exchange: Exchange = event_exchange(publisher)
        exchange(self.channel).declare()
        name = f"spy-{publisher}-{uuid.uuid4().hex[:8]}"
        self.queue = Queue(name, exchange=exchange, routing_key=event_type, exclusive=True,
                           auto_delete=True)(self.channel)
        self.queue.declare()
        self.marker_key = SPY_MARKER_PREFIX + name  # this spy's markers reach it whatever event_type it watches
        self.queue.bind_to(exchange=exchange, routing_key=self.marker_key)

    def _next(self):
        """The next message in the queue, decoded, with markers passed over; None when the queue is empty."""
        while (message := self.queue.get(no_ack=True)) is not None:
            if not message.delivery_info["routing_key"].startswith(SPY_MARKER_PREFIX):
                return json.loads(message.body)
        return None

    def collect(self, count: int, timeout: float = 15.0) -> list[dict]:
        """The next ``count`` events, in the order they arrived; fails if they do not all arrive in time."""
        received: list[dict] = []

        def arrived() -> bool:
            while len(received) < count and (event := self._next()) is not None:
                received.append(event)
            return len(received) >= count

        try:
            wait_for(arrived, timeout=timeout, what=f"{count} events from {self.publisher}")
        except JourneyFailed:
            raise AssertionError(f"{len(received)} of the {count} events expected from {self.publisher} arrived "
                                 f"within {timeout:.0f} s: {[e.get('type') for e in received]}") from None
        return received

    def drain(self, outbox_db: str, timeout: float = 30.0) -> list[dict]:
        """Every event the publisher published before this call and the spy has not collected yet: a check that
        nothing more was published is ``spy.drain(db) == []``. ``outbox_db`` is the publisher's database.

        The signal is a marker, not a pause. Called once the action under test has committed (an RPC that
        returned; an event handler proven done: its event collected downstream, its inbox row, or ``handled``),
        drain writes a marker row into the publisher's own outbox and waits until the relay has stamped that row
        published, then reads the queue empty. That is sound because of how credence_common/bus/outbox_relay.py
        publishes: a round reads the pending rows ``ORDER BY seq`` (the marker's seq is above every row that had
        committed when it was written, and those are visible to any read that sees the marker), publishes them in
        that order on one channel, and stamps only the confirmed rows up to the first one the broker did not
        confirm; one relay publishes a service's outbox at a time (the advisory lock of ``relay_turn`` on
        PostgreSQL; one process per SQLite file). So once the marker is stamped, every earlier row was published
        and confirmed, each time it was published (a round that failed goes again in order, marker included),
        and a confirm means the broker has put the message in every queue it routes to: this spy's queue holds
        all of them. Reading it until it is empty therefore sees every event, duplicates included, however slow
        the relay. If the marker is never stamped or never arrives, drain fails (it never passes by timing out).
        The marker's row is deleted afterwards, so the outbox holds what the service wrote and nothing more."""
        model = importlib.import_module(f"services.{self.publisher}.models").OutboxEvent
        marker_id = str(uuid.uuid4())
        engine = make_engine(outbox_db)
        try:
            with Session(engine) as session, session.begin():  # the model's own column types (Sealed envelopes)
                session.add(model(event_id=marker_id, event_type=self.marker_key, created_at=utcnow(), attempts=0,
                                  envelope_json=json.dumps({"id": marker_id, "type": self.marker_key})))
            stamped = text("SELECT 1 FROM outbox WHERE event_id = :id AND published_at IS NOT NULL")
            try:
                wait_for(lambda: _scalar(engine, stamped, id=marker_id), timeout=timeout,
                         what=f"{self.publisher}'s relay to publish the spy's marker")
            except JourneyFailed:
                raise AssertionError(f"{self.publisher}'s relay did not publish the spy's marker within "
                                     f"{timeout:.0f} s (is {self.publisher} running on {outbox_db}?)") from None
            received, markers = [], 0
            while (message := self.queue.get(no_ack=True)) is not None:
                if message.delivery_info["routing_key"] == self.marker_key:
                    markers += 1
                elif not message.delivery_info["routing_key"].startswith(SPY_MARKER_PREFIX):
                    received.append(json.loads(message.body))
            assert markers, f"the marker {self.publisher}'s relay stamped published never reached the spy"
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM outbox WHERE event_id = :id"), {"id": marker_id})
            return received
        finally:
            engine.dispose()

    def received_by_now(self) -> list[dict]:
        """What the queue holds now, without waiting for anything. Only for a publisher that is stopped (its
        container's ``stop()`` returned, so its relay thread has ended): nothing can publish any more, and the
        queue already holds all it ever will of that past."""
        received = []
        while (event := self._next()) is not None:
            received.append(event)
        return received

    def close(self):
        self.connection.release()


def _scalar(engine, statement, **params):
    with engine.connect() as connection:
        return connection.execute(statement, params).scalar()


@contextmanager
def handled(container, method_name: str, *event_ids: str, timeout: float = 30.0):
    """Ends the block only once the event handler ``method_name`` of ``container`` has handled each of
    ``event_ids`` (an id listed twice: two deliveries of it, e.g. a redelivered copy) and returned, so its
    transaction has committed. The positive signal that a handler which must do nothing (a duplicate, an event
    for something else) has run, before a check such as ``spy.drain(db) == []``; an inbox row cannot show a
    duplicate was handled, its first copy wrote it. Uses nameko's ``entrypoint_waiter`` (enter it before the
    events are published); a delivery whose handler raised does not count (it is retried later), a batch
    counts each of its messages."""
    remaining = Counter(event_ids)

    def done(worker_ctx, result, exc_info) -> bool:
        if exc_info is None:
            bodies = worker_ctx.args[0] if worker_ctx.args else None
            for body in bodies if isinstance(bodies, list) else [bodies]:
                if isinstance(body, dict) and remaining[body.get("id")] > 0:
                    remaining[body["id"]] -= 1
        return not +remaining

    with entrypoint_waiter(container, method_name, timeout=timeout, callback=done):
        yield


@pytest.fixture
def event_spy(rabbit_config):
    spies = []

    def make(publisher: str, event_type: str = "#") -> EventSpy:
        spy = EventSpy(rabbit_config["AMQP_URI"], publisher, event_type)
        spies.append(spy)
        return spy

    yield make
    for spy in spies:
        spy.close()


@pytest.fixture
def payments_fees(rabbit_config, container_factory):
    """A stand-in for payments answering its ``fee_schedule`` RPC, on the test's broker, for tests that run
    certificates without payments (certificates asks payments' schedule for every certificate or application it
    creates). Yields the amounts it answers (fee code -> fen, as payments' migration seeds them): change them to
    change its answer. A test that runs the real PaymentsService does not use it (both would answer)."""
    fees = seeded_fees()

    class PaymentsFeeSchedule:
        name = "payments"

        @rpc
        def fee_schedule(self) -> dict:
            return {"fees": [{"fee_code": code, "description": code, "amount_fen": fen,
                              "updated_at": "2026-12-07T00:00:00+00:00"} for code, fen in sorted(fees.items())]}

    container_factory(PaymentsFeeSchedule, {"AMQP_URI": rabbit_config["AMQP_URI"]}).start()
    yield fees
