"""The outbox relay: events survive a publisher that starts before its consumers, and a crash between
commit and publish."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import make_envelope, utcnow
from credence_common.contracts.events import CandidateQualifiedV1, CertificateIssuedV1, PaymentSucceededV1
from credence_common.contracts.topology import subscribers_of
from credence_common.persistence.db import make_engine
from services.certificates.models import OutboxEvent
from services.certificates.service import CertificatesService
from services.verification.service import VerificationService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for


def qualified(result_id: str) -> CandidateQualifiedV1:
    return CandidateQualifiedV1(result_id=result_id, candidate_id="cand-1", ticket_number="112600000001",
                                full_name="王小明", resident_id_number_masked="110105********002X",
                                program_code="PSY-COUNSELLOR", program_name="Psychological Counsellor (Foundation)",
                                sitting="2026-11", final_score=82, qualified_at=utcnow())


def test_publisher_declares_consumer_queues_so_start_order_does_not_matter(
        container_factory, service_config, rabbit_manager, rabbit_config, payments_fees):
    """certificates issues a certificate while verification has never run; verification, started later,
    still receives the certificate.issued event (nameko alone would have dropped it)."""
    certificates_config = service_config("certificates")
    certificates = container_factory(CertificatesService, certificates_config)
    certificates.start()
    queue = subscribers_of(CertificateIssuedV1.event_type)[0].queue_name
    vhost = rabbit_config["vhost"]
    assert queue in {q["name"] for q in rabbit_manager.get_queues(vhost)}

    amqp = certificates_config["AMQP_URI"]
    publish_event(amqp, qualified("res-1"))
    db = certificates_config["DB_URI"]
    certificate_id = wait_for(lambda: query(db, "select certificate_id from certificates"), what="certificate")[0][0]
    with rpc_proxy("certificates", certificates_config) as proxy:
        proxy.confirm_certificate(signed_actor({"subject": "cand-1", "role": "candidate"}), certificate_id,
                                  {"photo_reference": "photos/cand-1.jpg", "delivery_address": "北京市海淀区1号"})
    publish_event(amqp, PaymentSucceededV1(order_number="P1", purpose="certificate_fee", reference_id=certificate_id,
                                           due_id="due-1", candidate_id="cand-1", order_amount_fen=6000,
                                           payer_kind="candidate", payer_id="cand-1", amount_fen=6000,
                                           provider="sandbox", provider_transaction_id="SBX-1", paid_at=utcnow()))
    number = wait_for(lambda: query(db, "select certificate_number from certificates where status = 'issued'"),
                      what="issued")[0][0]
    wait_for(lambda: query(db, "select count(*) from outbox where published_at is null") == [(0,)], what="relay")

    verification_config = service_config("verification", AMQP_URI=amqp)
    verification = container_factory(VerificationService, verification_config)
    verification.start()
    with rpc_proxy("verification", verification_config) as proxy:
        answer = wait_for(lambda: _check(proxy, number), what="verification received the event")
    assert answer["result"] == "valid"


def _check(proxy, number):
    try:
        return proxy.public_check({"holder_name": "王小明", "certificate_number": number})
    except Exception:
        return None


def test_events_left_in_the_outbox_by_a_crash_are_published_on_start(container_factory, service_config, event_spy):
    """A process that committed a state change and died before publishing leaves the event in the
    outbox; the next start publishes it."""
    config = service_config("certificates")
    engine = make_engine(config["DB_URI"])
    payload = qualified("res-9")  # any event type: the relay publishes what the outbox holds
    envelope = make_envelope(payload)
    with Session(engine) as session, session.begin():
        session.add(OutboxEvent(event_id=envelope.id, event_type="credence.certificate.awaiting_payment.v1",
                                envelope_json=envelope.model_dump_json(), created_at=envelope.time, attempts=0))
    engine.dispose()
    spy = event_spy("certificates")
    container = container_factory(CertificatesService, config)
    container.start()
    received = spy.collect(1)
    assert [e["id"] for e in received] == [envelope.id]
    wait_for(lambda: query(config["DB_URI"], "select count(*) from outbox where published_at is not null") == [(1,)],
             what="stamped published")
    assert spy.drain(config["DB_URI"]) == []  # published once
    assert uuid.UUID(envelope.id)


def _outbox_event(event_type: str):
    envelope = make_envelope(qualified(f"res-{uuid.uuid4().hex[:6]}"))  # any payload: the relay sends what it holds
    return envelope.id, OutboxEvent(event_id=envelope.id, event_type=event_type, created_at=envelope.time,
                                    envelope_json=envelope.model_dump_json(), attempts=0)


def test_an_event_the_broker_refuses_stays_pending_with_those_after_it_and_they_go_again_in_order(
        container_factory, service_config, event_spy):
    """The relay publishes a round and waits once for the broker's confirms: what the broker confirmed before
    the event it refused (a nack) is stamped published; the refused one and those after it stay in the outbox
    and go again, in order, until the broker takes them."""
    from kombu import Connection, Queue

    from credence_common.bus.outbox_relay import event_exchange
    from credence_common.observability.metrics import OUTBOX_PUBLISH_FAILURES

    config = service_config("certificates")
    refused_type, taken_type = "credence.certificate.test_refused.v1", "credence.certificate.test_taken.v1"
    # a queue that takes nothing: the broker nacks every message routed to it (x-overflow reject-publish)
    blocker = Queue(f"blocker-{uuid.uuid4().hex[:6]}", exchange=event_exchange("certificates"),
                    routing_key=refused_type, queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with Connection(config["AMQP_URI"]) as connection:
        blocker(connection.channel()).declare()
    spy = event_spy("certificates")
    failures = OUTBOX_PUBLISH_FAILURES.labels("certificates")
    failed_before = failures._value.get()

    engine = make_engine(config["DB_URI"])
    events = [_outbox_event(taken_type), _outbox_event(refused_type), _outbox_event(taken_type)]
    with Session(engine) as session, session.begin():
        session.add_all([row for _id, row in events])
    engine.dispose()
    container = container_factory(CertificatesService, config)
    container.start()

    wait_for(lambda: failures._value.get() > failed_before, what="a round that the broker's nack failed")
    pending = query(config["DB_URI"], "select event_id from outbox where published_at is null order by seq")
    assert pending == [(events[1][0],), (events[2][0],)]  # the first is stamped; the refused one and the next wait

    with Connection(config["AMQP_URI"]) as connection:
        blocker(connection.channel()).delete()
    wait_for(lambda: query(config["DB_URI"], "select count(*) from outbox where published_at is null") == [(0,)],
             timeout=60, what="the refused event published once the broker takes it")
    # every round publishes in the order written (the spy's queue takes all three each time)
    assert [event["id"] for event in spy.collect(3)] == [event_id for event_id, _row in events]


def test_drain_waits_for_its_marker_so_a_duplicate_published_late_is_still_caught(
        container_factory, service_config, event_spy, monkeypatch):
    """The spy's ``drain`` (tests/integration/conftest.py) proves "nothing more was published" by a marker the
    relay publishes after everything written before it, not by a pause. Here the relay is slow (each publish
    waits 1.5 s, as on a loaded machine) and republishes an event whose stamp was lost (the crash between publish
    and stamp): the copy leaves well after the 0.5 s the old drain waited, and drain still returns it."""
    import time

    import eventlet

    from credence_common.bus.outbox_relay import PublisherConfirms

    published_at: list[float] = []  # when each publish left, in order
    next_tag = PublisherConfirms.next_tag

    def slow_next_tag(self):  # called right before each publish
        eventlet.sleep(1.5)  # the relay under load: not a wait of the test's, the slowness it must survive
        published_at.append(time.monotonic())
        return next_tag(self)

    monkeypatch.setattr(PublisherConfirms, "next_tag", slow_next_tag)
    config = service_config("certificates")
    db = config["DB_URI"]
    event_id, row = _outbox_event("credence.certificate.awaiting_payment.v1")
    engine = make_engine(db)
    with Session(engine) as session, session.begin():
        session.add(row)
    engine.dispose()
    spy = event_spy("certificates", "credence.certificate.awaiting_payment.v1")
    container_factory(CertificatesService, config).start()
    assert [e["id"] for e in spy.collect(1)] == [event_id]
    wait_for(lambda: query(db, "select count(*) from outbox where published_at is null") == [(0,)], what="stamped")

    engine = make_engine(db)
    try:
        with engine.begin() as connection:  # the stamp lost: the relay publishes the event again
            connection.exec_driver_sql("UPDATE outbox SET published_at = NULL")
    finally:
        engine.dispose()
    drain_began = time.monotonic()
    assert [e["id"] for e in spy.drain(db)] == [event_id]  # the duplicate, caught
    assert len(published_at) == 3  # the event, its copy, the marker
    assert published_at[1] - drain_began > 0.5  # later than the old fixed pause would have looked
    assert query(db, "select event_id from outbox") == [(event_id,)]  # the marker's row is gone again
    assert spy.drain(db) == []


def test_drain_fails_when_the_publisher_never_publishes_its_marker(service_config, event_spy):
    """No relay runs on this database: drain fails instead of reporting that nothing was published."""
    config = service_config("certificates")
    spy = event_spy("certificates")
    with pytest.raises(AssertionError, match="did not publish the spy's marker"):
        spy.drain(config["DB_URI"], timeout=2)
