"""The example downstream registry (deploy/registry_subscriber.py) against a real broker and the real
certificates service: issue then revoke arrive in order, and duplicates or late copies change nothing. The
registry reads every message with the CloudEvents SDK (tests/unit/test_cloudevents_sdk.py: every event type)."""

from __future__ import annotations

import json
import sqlite3

from cloudevents.core.v1.event import CloudEvent

from deploy import registry_subscriber
from services.certificates.service import CertificatesService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for
from tests.integration.test_certificates import CANDIDATE, PHOTO, STAFF, application, paid, qualified


def test_a_registry_keeps_in_step_with_issue_and_revoke_whatever_the_delivery_order(start_service, event_spy,
                                                                                    tmp_path, payments_fees):
    container, config = start_service(CertificatesService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    pika_uri = amqp.replace("pyamqp://", "amqp://", 1)
    registry_db = str(tmp_path / "registry.sqlite")
    queue = "example-registry.test"
    assert registry_subscriber.run(pika_uri, registry_db, queue, idle_timeout=0.2) == 0  # declares its queue
    spy = event_spy("certificates", "credence.certificate.#")

    publish_event(amqp, qualified())
    certificate_id = application(db)
    with rpc_proxy("certificates", config) as certificates:
        certificates.confirm_certificate(CANDIDATE, certificate_id, PHOTO)
        publish_event(amqp, paid(certificate_id))
        wait_for(lambda: query(db, "select status from certificates") == [("issued",)], what="issued")
        certificates.revoke_certificate(STAFF, certificate_id, {"reason": "Obtained by fraud"})
    awaiting, issued, revoked = spy.collect(3)

    handled = registry_subscriber.run(pika_uri, registry_db, queue, max_messages=3, idle_timeout=5)
    assert handled == 3
    registry = sqlite3.connect(registry_db)
    row = registry.execute("SELECT status, sequence, certificate_number, holder_name FROM certificates").fetchall()
    assert row == [("revoked", 5, issued["data"]["certificate_number"], "王小明")]

    # a redelivered issue event and a late duplicate of the revocation change nothing (read by the SDK from the
    # bodies the certificates service published)
    issued_again, revoked_again, awaiting_again = (registry_subscriber.read_event(json.dumps(envelope).encode())
                                                   for envelope in (issued, revoked, awaiting))
    assert revoked_again.get_extension("correlationid") == revoked["correlationid"]
    assert registry_subscriber.apply(registry, issued_again) is False
    assert registry_subscriber.apply(registry, revoked_again) is False
    assert registry_subscriber.apply(registry, awaiting_again) is False  # not a state the registry keeps
    assert registry.execute("SELECT status, sequence FROM certificates").fetchall() == [("revoked", 5)]
    registry.close()


def event(event_id: str, event_type: str, data) -> CloudEvent:
    return CloudEvent({"id": event_id, "type": event_type, "source": "/credence/certificates"}, data)


def test_events_that_overtake_each_other_end_in_the_same_state(tmp_path):
    registry = registry_subscriber.open_registry(str(tmp_path / "r.sqlite"))
    issued = event("e1", "credence.certificate.issued.v1",
                   {"certificate_id": "c1", "sequence": 3, "certificate_number": "202611000000011",
                    "holder_name": "王小明", "program_name": "P", "issued_on": "2026-11-23"})
    revoked = event("e2", "credence.certificate.revoked.v1",
                    {"certificate_id": "c1", "sequence": 4, "certificate_number": "202611000000011"})
    assert registry_subscriber.apply(registry, revoked) is True
    assert registry_subscriber.apply(registry, issued) is False  # older: skipped
    held = registry.execute("SELECT status, sequence, certificate_number, holder_name, issued_on FROM certificates")
    assert held.fetchall() == [("revoked", 4, "202611000000011", "王小明", "2026-11-23")]
    assert registry_subscriber.apply(registry, event("x", "credence.certificate.revoked.v1", "not an object")) is False
    assert registry_subscriber.apply(registry, event("e3", "credence.certificate.issued.v2",
                                                     {"certificate_id": "c1", "sequence": 9})) is False
    assert registry.execute("SELECT last_event_id FROM certificates").fetchall() == [("e2",)]
