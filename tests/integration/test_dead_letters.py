"""Retries with backoff and dead letters, on a real broker and database: a message that keeps failing ends
in the service's dead-letter queue with its reason, an undecodable or malformed one goes there at once and
the service keeps working, and a replay after the cause is fixed applies it."""

from __future__ import annotations

import json

from kombu import Connection, Producer

from credence_common.bus import dead_letters
from credence_common.bus.outbox_relay import event_exchange
from credence_common.bus.reliable_events import dead_letter_queue_name, retry_queue_name
from credence_common.contracts.envelope import make_envelope
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1
from services.verification.service import VerificationService
from tests.integration.conftest import CONFIRMED, publish_event, query, rpc_proxy, wait_for
from tests.integration.test_verification import NUMBER, issued, revoked


def publish_raw(amqp_uri: str, body: bytes, content_type: str = "application/json") -> None:
    with Connection(amqp_uri, transport_options=CONFIRMED) as connection:
        exchange = event_exchange("certificates")
        Producer(connection.channel(), exchange=exchange).publish(
            body, routing_key=CertificateIssuedV1.event_type, content_type=content_type, content_encoding="utf-8",
            delivery_mode=2, declare=[exchange])


def alive(config) -> bool:
    with rpc_proxy("verification", config) as verification:
        return verification.health()["status"] == "ok"


def depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        return connection.channel().queue_declare(queue, passive=True).message_count


def test_a_message_that_keeps_failing_is_dead_lettered_then_replayed_once_fixed(start_service):
    container, config = start_service(VerificationService, EVENT_MAX_ATTEMPTS=3, EVENT_RETRY_BASE_SECONDS=0.05)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    assert depth(amqp, retry_queue_name("verification", 0.05)) == 0  # the delay queues are declared at start
    publish_event(amqp, revoked())  # its certificate was never issued: applying it fails every time
    wait_for(lambda: len(dead_letters.list_dead_letters(amqp, "verification")) == 1, what="dead-lettered")
    [letter] = dead_letters.list_dead_letters(amqp, "verification")
    assert letter.attempts == 3 and "arrived before its issue" in letter.reason
    assert letter.event_type == CertificateRevokedV1.event_type
    assert letter.source_queue.endswith("verification.handle_certificate_revoked")
    assert len(dead_letters.list_dead_letters(amqp, "verification")) == 1  # listing leaves it in place

    publish_event(amqp, issued())  # the cause is fixed: the issue arrives
    wait_for(lambda: query(db, "select status from verifiable_certificates") == [("valid",)], what="issued")
    assert dead_letters.replay(amqp, "verification") == 1
    wait_for(lambda: query(db, "select status from verifiable_certificates") == [("revoked",)],
             what="the replayed revocation applied")
    assert depth(amqp, dead_letter_queue_name("verification")) == 0
    assert dead_letters.replay(amqp, "verification") == 0
    assert alive(config)  # nothing above stopped the service


def test_undecodable_and_malformed_messages_are_dead_lettered_at_once_and_the_service_goes_on(start_service):
    container, config = start_service(VerificationService, EVENT_RETRY_BASE_SECONDS=30)  # no retry within a test
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    publish_raw(amqp, b'{"this is": not json')
    publish_raw(amqp, b"\x80\x04K\x01.", content_type="application/x-python-serialize")  # a pickle: never
    publish_raw(amqp, json.dumps({"id": "x", "type": CertificateIssuedV1.event_type, "data": {}}).encode())
    newer = json.loads(make_envelope(issued()).model_dump_json())
    newer["type"] = CertificateIssuedV1.event_type.replace(".v1", ".v9")  # a version this handler cannot read
    publish_raw(amqp, json.dumps(newer).encode())
    publish_event(amqp, issued())  # a good event behind the bad ones is still applied
    wait_for(lambda: query(db, "select count(*) from verifiable_certificates") == [(1,)], what="good event applied")
    wait_for(lambda: len(dead_letters.list_dead_letters(amqp, "verification")) == 4, what="four dead letters")
    reasons = [letter.reason for letter in dead_letters.list_dead_letters(amqp, "verification")]
    assert sum("undecodable" in reason for reason in reasons) == 2
    assert sum("MalformedEvent" in reason for reason in reasons) == 2
    assert any(".v9" in reason for reason in reasons)
    assert all(letter.attempts == 1 for letter in dead_letters.list_dead_letters(amqp, "verification"))
    assert alive(config)
    assert dead_letters.purge(amqp, "verification") == 4
    assert query(db, "select certificate_number from verifiable_certificates") == [(NUMBER,)]
