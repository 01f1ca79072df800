"""Certificates' personal data at rest (services/certificates/adapters/protection.py) in a real container, on SQLite
and PostgreSQL: stored encrypted, read back in clear by staff and the printer's export, and the keys rotate."""

from __future__ import annotations

import json

import pytest
import yaml
from nameko.standalone.rpc import ServiceRpcProxy
from typer.testing import CliRunner

from credence_common.persistence import idempotency
from credence_common.persistence.db import make_engine
from credence_common.security.crypto import DecryptionError, KeyRing
from services.certificates.adapters.protection import DATA_KEYS
from services.certificates.cli import app, key_usage, rotate, sealed_tables
from services.certificates.service import CertificatesService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_certificates import paid, qualified

CANDIDATE = signed_actor({"subject": "cand-1", "role": "candidate"})
STAFF = signed_actor({"subject": "staff-1", "role": "staff"})
GATEWAY_KEY = idempotency.gateway_key("test-jwt-secret")
ADDRESS = "北京市海淀区学院路1号 100083"
OLD_KEYS = {"CERTIFICATES_DATA_KEYS": "k1=test-certificates-old-key", "CERTIFICATES_DATA_ACTIVE_KEY_ID": "k1"}
ROTATED_KEYS = {"CERTIFICATES_DATA_KEYS": "k2=test-certificates-new-key,k1=test-certificates-old-key",
                "CERTIFICATES_DATA_ACTIVE_KEY_ID": "k2"}
NEW_ONLY = {"CERTIFICATES_DATA_KEYS": "k2=test-certificates-new-key", "CERTIFICATES_DATA_ACTIVE_KEY_ID": "k2"}


@pytest.fixture(autouse=True)
def _config_file_keys_afterwards():
    yield
    DATA_KEYS.reset()  # later tests in this process get the config file's keys again, not these test keys


def every_stored_text(db_uri: str) -> str:
    """Every value of every table, as stored."""
    return repr([query(db_uri, f"select * from {name}") for name, *_ in sealed_tables()]
                + [query(db_uri, "select * from certificate_history"),
                   query(db_uri, "select * from idempotency_records")])


def issue_one(config: dict, result_id: str = "res-1", order: str = "P202611230000000001") -> str:
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], qualified(result_id))
    certificate_id = wait_for(lambda: query(db, "select certificate_id from certificates where result_id = :r",
                                            r=result_id), what="application")[0][0]
    request = {"photo_reference": f"photos/{result_id}.jpg", "delivery_address": ADDRESS}
    # with an Idempotency-Key: the answer kept for a retry holds the name and the address too (encrypted with a
    # key derived from the client's Idempotency-Key: credence_common/persistence/idempotency.py)
    headers = idempotency.request_headers(f"confirm-{result_id}", "candidate:cand-1", "confirm_certificate", "POST",
                                          f"/api/v1/me/certificates/{certificate_id}/confirmation",
                                          json.dumps(request).encode(), GATEWAY_KEY)
    with ServiceRpcProxy("certificates", {"AMQP_URI": config["AMQP_URI"]}, timeout=30,
                         context_data=headers) as certificates:
        confirmed = certificates.confirm_certificate(CANDIDATE, certificate_id, request)
        assert certificates.confirm_certificate(CANDIDATE, certificate_id, request) == confirmed  # replayed
    assert (confirmed["holder_name"], confirmed["delivery_address"]) == ("王小明", ADDRESS)
    publish_event(config["AMQP_URI"], paid(certificate_id, order=order))
    wait_for(lambda: query(db, "select status from certificates where certificate_id = :c", c=certificate_id)
             == [("issued",)], what="issued")
    wait_for(lambda: query(db, "select count(*) from outbox where published_at is null") == [(0,)], what="published")
    return certificate_id


def test_names_addresses_and_events_are_stored_encrypted_and_read_in_clear(start_service, event_spy, payments_fees):
    container, config = start_service(CertificatesService, **OLD_KEYS)
    spy = event_spy("certificates", "credence.certificate.issued.v1")
    certificate_id = issue_one(config)

    stored = every_stored_text(config["DB_URI"])
    # the kept answer is there, encrypted by the idempotency records' own mechanism (not with the data keys)
    assert query(config["DB_URI"], "select count(*) from idempotency_records where answer_json like 'v1:%'") \
        == [(1,)]
    assert "王小明" not in stored and "学院路" not in stored and "photos/res-1" not in stored
    (holder, address, photo), = query(config["DB_URI"], "select holder_name_encrypted, delivery_address_encrypted, "
                                                        "photo_reference_encrypted from certificates")
    keyring = KeyRing.from_spec(OLD_KEYS["CERTIFICATES_DATA_KEYS"], "k1")
    assert [keyring.decrypt(holder), keyring.decrypt(address), keyring.decrypt(photo)] == [
        "王小明", ADDRESS, "photos/res-1.jpg"]
    # the relay publishes the envelope in clear: subscribers (verification) read it as before
    assert spy.collect(1)[0]["data"]["holder_name"] == "王小明"

    with rpc_proxy("certificates", config) as certificates:
        seen = certificates.certificate(STAFF, certificate_id)
        assert (seen["holder_name"], seen["delivery_address"]) == ("王小明", ADDRESS)
        export = certificates.batch_csv(STAFF, seen["batch_id"])
        assert "王小明" in export and ADDRESS in export and "photos/res-1.jpg" in export


def test_keys_rotate_and_the_old_key_can_then_be_removed(start_service, container_factory, tmp_path, payments_fees):
    first, config = start_service(CertificatesService, **OLD_KEYS)
    db = config["DB_URI"]
    before = issue_one(config)
    first.stop()

    # the new key in front and active; the old one still decrypts what it wrote
    second = container_factory(CertificatesService, dict(config, **ROTATED_KEYS))
    second.start()
    later = issue_one(config, "res-2", order="P202611230000000002")
    with rpc_proxy("certificates", config) as certificates:
        assert certificates.certificate(STAFF, before)["holder_name"] == "王小明"
    prefixes = {row[0].split("$")[0] for row in query(db, "select holder_name_encrypted from certificates")}
    assert prefixes == {"k1", "k2"}

    rotated = KeyRing.from_spec(ROTATED_KEYS["CERTIFICATES_DATA_KEYS"], "k2")
    engine = make_engine(db)
    try:
        assert key_usage(engine, rotated)["k1"] > 0
        assert rotate(engine, rotated, batch_size=1) > 0
        assert set(key_usage(engine, rotated)) == {"k2"}  # every table, the outbox included
        assert rotate(engine, rotated) == 0  # rerunnable: nothing left under the old key
    finally:
        engine.dispose()
    second.stop()

    # k1 removed: everything still reads, through the service
    third = container_factory(CertificatesService, dict(config, **NEW_ONLY))
    third.start()
    with rpc_proxy("certificates", config) as certificates:
        for certificate_id in (before, later):
            seen = certificates.certificate(STAFF, certificate_id)
            assert (seen["holder_name"], seen["delivery_address"]) == ("王小明", ADDRESS)
    with pytest.raises(DecryptionError):  # and the old key alone no longer reads anything
        KeyRing.from_spec(OLD_KEYS["CERTIFICATES_DATA_KEYS"], "k1").decrypt(
            query(db, "select holder_name_encrypted from certificates")[0][0])


def test_the_rotate_keys_command_reports_and_reencrypts(start_service, tmp_path, payments_fees):
    container, config = start_service(CertificatesService, **OLD_KEYS)
    issue_one(config)
    container.stop()
    settings = tmp_path / "certificates.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": config["DB_URI"], **ROTATED_KEYS}))
    runner = CliRunner()
    status = runner.invoke(app, ["key-status", "--config", str(settings)])
    assert status.exit_code == 0 and "k1" in status.output and "configured" in status.output, status.output
    result = runner.invoke(app, ["rotate-keys", "--config", str(settings), "--batch-size", "2"])
    assert result.exit_code == 0 and "under key k2" in result.output, result.output
    assert {value.split("$")[0] for row in query(config["DB_URI"], "select holder_name_encrypted, "
                                                                   "delivery_address_encrypted from certificates")
            for value in row} == {"k2"}
    again = runner.invoke(app, ["rotate-keys", "--config", str(settings)])
    assert "Re-encrypted 0 row(s)" in again.output
