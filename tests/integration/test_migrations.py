"""Each service's migrations build exactly the schema its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from credence_common.persistence.db import make_engine
from credence_common.persistence.migrations import SERVICES


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


def test_payments_0002_turns_each_old_order_into_a_due_and_an_order_item(databases):
    from credence_common.persistence.migrations import upgrade
    from tests.integration.conftest import query

    db_uri = databases.create("payments", revision="0001")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO payment_orders (order_number, purpose, reference_id, payer_kind, payer_id, amount_fen, "
                "status, provider, provider_transaction_id, created_at, paid_at) VALUES "
                "('P1', 'certificate_fee', 'cert-1', 'candidate', 'cand-1', 6000, 'paid', 'sandbox', 'T1', "
                "'2026-11-20 10:00:00+00:00', '2026-11-20 10:05:00+00:00'), "
                "('P2', 'certificate_fee', 'cert-2', 'candidate', 'cand-2', 6000, 'pending', NULL, NULL, "
                "'2026-11-21 10:00:00+00:00', NULL)")
    finally:
        engine.dispose()
    upgrade("payments", db_uri)
    assert query(db_uri, "select order_number, status, provider, refunded_fen from payment_orders "
                         "order by order_number") == [("P1", "paid", "sandbox", 0), ("P2", "created", "sandbox", 0)]
    assert query(db_uri, "select due_id, reference_id, candidate_id, status, open_order_number, paid_order_number "
                         "from payment_dues order by due_id") == [
        ("due-P1", "cert-1", "cand-1", "paid", None, "P1"), ("due-P2", "cert-2", "cand-2", "open", "P2", None)]
    assert query(db_uri, "select order_number, due_id, amount_fen from payment_order_items order by order_number") \
        == [("P1", "due-P1", 6000), ("P2", "due-P2", 6000)]
    assert query(db_uri, "select provider_transaction_id, order_number, amount_fen from provider_payments") == [
        ("T1", "P1", 6000)]
    assert query(db_uri, "select fee_code, amount_fen from fees order by amount_fen") == [
        ("certificate_fee", 6000), ("certificate_reissue", 10000), ("certificate_correction", 20000)]


def test_certificates_migrations_keep_existing_certificates_and_queue_issued_ones_for_printing(databases):
    from credence_common.persistence.migrations import upgrade
    from tests.integration.conftest import query

    db_uri = databases.create("certificates", revision="0001")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO certificates (certificate_id, result_id, candidate_id, ticket_number, holder_name, "
                "resident_id_number_masked, program_code, program_name, sitting, status, payer_kind, payer_id, "
                "certificate_fee_fen, certificate_number, payment_order_number, created_at, issued_at) VALUES "
                "('c1', 'r1', 'cand-1', '112600000001', '王小明', '110105********002X', 'PSY-COUNSELLOR', 'P', "
                "'2026-11', 'issued', 'candidate', 'cand-1', 6000, '202611000000018', 'P1', "
                "'2026-11-20 10:00:00+00:00', '2026-11-20 10:05:00+00:00'), "
                "('c2', 'r2', 'cand-2', '112600000002', '李静', '110105********0021', 'PSY-COUNSELLOR', 'P', "
                "'2026-11', 'awaiting_candidate_payment', 'candidate', 'cand-2', 6000, NULL, NULL, "
                "'2026-11-21 10:00:00+00:00', NULL)")
    finally:
        engine.dispose()
    upgrade("certificates", db_uri)
    assert query(db_uri, "select certificate_id, status, version, delivery_status, batch_id is not null "
                         "from certificates order by certificate_id") == [
        ("c1", "issued", 1, "queued", True), ("c2", "awaiting_candidate_payment", 1, "none", False)]
    assert query(db_uri, "select certificate_id, action from certificate_history order by certificate_id") == [
        ("c1", "migrated"), ("c2", "migrated")]
    assert query(db_uri, "select batch_number, status from production_batches") == [(1, "open")]
    assert query(db_uri, "select ship_by is not null from certificates where certificate_id = 'c1'") == [(True,)]


def _downgrade(service: str, db_uri: str, revision: str) -> None:
    from alembic import command

    from credence_common.persistence.migrations import alembic_config

    config = alembic_config(service)
    engine = make_engine(db_uri)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":  # as credence_common.persistence.migrations.upgrade does
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                config.attributes["connection"] = connection
                command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_certificates_0007_encrypts_names_addresses_references_and_envelopes_and_its_downgrade_decrypts(
        databases, monkeypatch):
    from credence_common.persistence.migrations import upgrade
    from credence_common.security.crypto import KeyRing
    from tests.integration.conftest import query

    # the keys the environment gives, as the migrate job runs with the service's CERTIFICATES_DATA_KEYS
    monkeypatch.setenv("CERTIFICATES_DATA_KEYS", "m1=test-migration-certificates-key")
    monkeypatch.setenv("CERTIFICATES_DATA_ACTIVE_KEY_ID", "m1")
    keyring = KeyRing.from_spec("m1=test-migration-certificates-key", "m1")
    db_uri = databases.create("certificates", revision="0006")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO certificates (certificate_id, result_id, candidate_id, ticket_number, holder_name, "
                "resident_id_number_masked, program_code, program_name, sitting, status, payer_kind, payer_id, "
                "certificate_fee_fen, created_at, photo_reference, delivery_address, version, delivery_status) "
                "VALUES ('c1', 'r1', 'cand-1', '112600000001', '王小明', '110105********002X', 'PSY-COUNSELLOR', "
                "'P', '2026-11', 'correction_requested', 'candidate', 'cand-1', 6000, "
                "'2026-11-20 10:00:00+00:00', 'photos/wang.jpg', '北京市海淀区学院路1号', 2, 'none'), "
                "('c2', 'r2', 'cand-2', '112600000002', '李静', '110105********0021', 'PSY-COUNSELLOR', 'P', "
                "'2026-11', 'pending_confirmation', 'candidate', 'cand-2', 6000, '2026-11-21 10:00:00+00:00', "
                "NULL, NULL, 1, 'none')")
            connection.exec_driver_sql(
                "INSERT INTO correction_requests (request_id, certificate_id, field, current_value, requested_value, "
                "reason, status, created_at) VALUES ('q1', 'c1', 'holder_name', '王小明', '王晓明', 'typo', 'open', "
                "'2026-11-20 11:00:00+00:00')")
            connection.exec_driver_sql(
                "INSERT INTO replacement_applications (application_id, certificate_id, candidate_id, kind, status, "
                "reason, identity_video_reference, corrected_holder_name, created_at, updated_at) VALUES "
                "('a1', 'c1', 'cand-1', 'correction', 'awaiting_payment', 'name', 'videos/wang.mp4', '王晓明', "
                "'2026-11-20 12:00:00+00:00', '2026-11-20 12:00:00+00:00')")
            connection.exec_driver_sql(
                "INSERT INTO outbox (event_id, event_type, envelope_json, created_at, attempts) VALUES "
                "('e1', 'credence.certificate.issued.v1', '{\"data\": {\"holder_name\": \"王小明\"}}', "
                "'2026-11-20 10:05:00+00:00', 1)")
    finally:
        engine.dispose()

    upgrade("certificates", db_uri)
    stored = query(db_uri, "select holder_name_encrypted, photo_reference_encrypted, delivery_address_encrypted "
                           "from certificates order by certificate_id")
    assert [tuple(None if v is None else keyring.decrypt(v) for v in row) for row in stored] == [
        ("王小明", "photos/wang.jpg", "北京市海淀区学院路1号"), ("李静", None, None)]
    assert [keyring.decrypt(v) for v in query(db_uri, "select current_value_encrypted, requested_value_encrypted "
                                                      "from correction_requests")[0]] == ["王小明", "王晓明"]
    assert [keyring.decrypt(v) for v in query(
        db_uri, "select identity_video_reference_encrypted, corrected_holder_name_encrypted "
                "from replacement_applications")[0]] == ["videos/wang.mp4", "王晓明"]
    (envelope,), = query(db_uri, "select envelope_json from outbox")
    assert keyring.decrypt(envelope) == '{"data": {"holder_name": "王小明"}}'
    everything = repr([query(db_uri, f"select * from {table}") for table in
                       ("certificates", "correction_requests", "replacement_applications", "outbox")])
    for clear in ("王小明", "王晓明", "李静", "北京", "photos/wang", "videos/wang"):
        assert clear not in everything

    _downgrade("certificates", db_uri, "0006")
    assert query(db_uri, "select holder_name, photo_reference, delivery_address from certificates "
                         "order by certificate_id") == [("王小明", "photos/wang.jpg", "北京市海淀区学院路1号"),
                                                        ("李静", None, None)]
    assert query(db_uri, "select current_value, requested_value from correction_requests") == [("王小明", "王晓明")]
    assert query(db_uri, "select identity_video_reference, corrected_holder_name from replacement_applications") \
        == [("videos/wang.mp4", "王晓明")]
    assert query(db_uri, "select envelope_json from outbox") == [('{"data": {"holder_name": "王小明"}}',)]


def test_certificates_0007_refuses_the_development_key_outside_development(databases, monkeypatch):
    from credence_common.config import ConfigurationRefused
    from credence_common.persistence.migrations import upgrade
    from tests.integration.conftest import query

    db_uri = databases.create("certificates", revision="0006")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO outbox (event_id, event_type, envelope_json, created_at, attempts) VALUES "
                "('e1', 'credence.certificate.issued.v1', '{}', '2026-11-20 10:05:00+00:00', 1)")
    finally:
        engine.dispose()
    monkeypatch.delenv("CERTIFICATES_DATA_KEYS", raising=False)
    monkeypatch.setenv("CREDENCE_ENV", "staging")
    with pytest.raises(ConfigurationRefused, match="CERTIFICATES_DATA_KEYS"):
        upgrade("certificates", db_uri)
    # nothing changed: the migration's transaction rolled back
    assert query(db_uri, "select version_num from alembic_version") == [("0006",)]
    assert query(db_uri, "select envelope_json from outbox") == [("{}",)]


def test_scoring_0012_encrypts_the_rosters_names_and_envelopes_and_its_downgrade_decrypts(
        databases, monkeypatch):
    from credence_common.persistence.migrations import upgrade
    from credence_common.security.crypto import KeyRing
    from tests.integration.conftest import query

    monkeypatch.setenv("SCORING_DATA_KEYS", "s1=test-migration-scoring-key")
    monkeypatch.setenv("SCORING_DATA_ACTIVE_KEY_ID", "s1")
    keyring = KeyRing.from_spec("s1=test-migration-scoring-key", "s1")
    db_uri = databases.create("scoring", revision="0011")
    engine = make_engine(db_uri)
    envelope = '{"data": {"full_name": "王小明"}}'
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO roster (ticket_number, candidate_id, full_name, resident_id_number_masked) VALUES "
                "('112600000001', 'cand-1', '王小明', '110105********002X'), "
                "('112600000002', 'cand-2', '李静', '110105********0021')")
            connection.exec_driver_sql(
                "INSERT INTO outbox (event_id, event_type, envelope_json, created_at, attempts) VALUES "
                f"('e1', 'credence.scoring.candidate_qualified.v1', '{envelope}', '2026-11-20 10:05:00+00:00', 1)")
    finally:
        engine.dispose()

    upgrade("scoring", db_uri)
    assert [keyring.decrypt(v) for (v,) in query(db_uri, "select full_name_encrypted from roster "
                                                         "order by ticket_number")] == ["王小明", "李静"]
    assert [keyring.decrypt(v) for (v,) in query(db_uri, "select envelope_json from outbox")] == [envelope]
    everything = repr([query(db_uri, f"select * from {table}") for table in ("roster", "outbox")])
    assert "王小明" not in everything and "李静" not in everything

    _downgrade("scoring", db_uri, "0011")
    assert query(db_uri, "select ticket_number, full_name from roster order by ticket_number") == [
        ("112600000001", "王小明"), ("112600000002", "李静")]
    assert query(db_uri, "select envelope_json from outbox") == [(envelope,)]


def test_payments_0005_encrypts_invoice_details_and_its_downgrade_decrypts(databases, monkeypatch):
    from credence_common.persistence.migrations import upgrade
    from credence_common.security.crypto import KeyRing
    from tests.integration.conftest import query

    monkeypatch.setenv("PAYMENTS_DATA_KEYS", "p1=test-migration-payments-key")
    monkeypatch.setenv("PAYMENTS_DATA_ACTIVE_KEY_ID", "p1")
    keyring = KeyRing.from_spec("p1=test-migration-payments-key", "p1")
    db_uri = databases.create("payments", revision="0004")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO payment_orders (order_number, payer_kind, payer_id, idempotency_key, amount_fen, "
                "currency, status, provider, pay_url, refunded_fen, refund_reserved_fen, invoice_title, "
                "invoice_tax_number, created_at, expires_at) VALUES "
                "('P1', 'candidate', 'cand-1', 'k1', 6000, 'CNY', 'created', 'sandbox', 'https://pay/1', 0, 0, "
                "'王小明', NULL, '2026-11-20 10:00:00+00:00', '2026-11-20 10:30:00+00:00'), "
                "('P2', 'institution', 'inst-1', 'k2', 6000, 'CNY', 'created', 'sandbox', 'https://pay/2', 0, 0, "
                "'北京培训学校', '91110105MA01ABCD2X', '2026-11-20 10:00:00+00:00', '2026-11-20 10:30:00+00:00'), "
                "('P3', 'candidate', 'cand-3', 'k3', 6000, 'CNY', 'created', 'sandbox', 'https://pay/3', 0, 0, "
                "NULL, NULL, '2026-11-20 10:00:00+00:00', '2026-11-20 10:30:00+00:00')")
    finally:
        engine.dispose()

    upgrade("payments", db_uri)
    assert [tuple(None if v is None else keyring.decrypt(v) for v in row) for row in query(
        db_uri, "select invoice_title_encrypted, invoice_tax_number_encrypted from payment_orders "
                "order by order_number")] == [("王小明", None), ("北京培训学校", "91110105MA01ABCD2X"), (None, None)]
    everything = repr(query(db_uri, "select * from payment_orders"))
    assert "王小明" not in everything and "北京培训学校" not in everything and "91110105MA01ABCD2X" not in everything

    _downgrade("payments", db_uri, "0004")
    assert query(db_uri, "select invoice_title, invoice_tax_number from payment_orders order by order_number") == [
        ("王小明", None), ("北京培训学校", "91110105MA01ABCD2X"), (None, None)]


def test_identity_0006_gives_every_existing_staff_account_every_role_and_records_it(databases):
    """Before staff roles every staff account could do everything: each keeps exactly that (an administrator then
    narrows it), and the grant is in the record of role changes like any other; an account created afterwards
    holds only what it is given."""
    from credence_common.contracts.staff_roles import STAFF_ROLES
    from credence_common.persistence.migrations import upgrade
    from tests.integration.conftest import query

    db_uri = databases.create("identity", revision="0005")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO staff_accounts (username, display_name, password_hash, created_at) VALUES "
                "('admin', 'admin', 'x', '2026-11-20 10:00:00+00:00'), "
                "('expert2', 'Second expert', 'y', '2026-11-21 10:00:00+00:00')")
    finally:
        engine.dispose()
    upgrade("identity", db_uri)
    every_role = ",".join(STAFF_ROLES)
    assert query(db_uri, "select username, roles from staff_accounts order by username") == [
        ("admin", every_role), ("expert2", every_role)]
    assert query(db_uri, "select username, changed_by, roles_before, roles_after, reason from staff_role_changes "
                         "order by username") == [
        ("admin", "migration:0006", "", every_role, "held every duty before staff roles existed"),
        ("expert2", "migration:0006", "", every_role, "held every duty before staff roles existed")]
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO staff_accounts (username, display_name, password_hash, created_at) VALUES "
                "('later', 'Later', 'z', '2026-12-07 10:00:00+00:00')")
    finally:
        engine.dispose()
    assert query(db_uri, "select roles from staff_accounts where username = 'later'") == [("",)]
    _downgrade("identity", db_uri, "0005")
    assert query(db_uri, "select username from staff_accounts order by username") == [
        ("admin",), ("expert2",), ("later",)]
    engine = make_engine(db_uri)
    try:
        from sqlalchemy import inspect

        assert "staff_role_changes" not in inspect(engine).get_table_names()
        assert "roles" not in {column["name"] for column in inspect(engine).get_columns("staff_accounts")}
    finally:
        engine.dispose()


def test_payments_0009_makes_refunds_already_processing_due_for_a_check_and_its_downgrade_drops_the_columns(
        databases):
    """0009 came with the timer that asks WeChat Pay about refunds it is still making; the submit timer no longer
    resubmits a refund WeChat Pay accepted. A refund already PROCESSING before it (pending, with WeChat Pay's refund
    id) is due for its first check at once, so it is not forgotten; one never accepted stays the submit timer's."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from credence_common.contracts.envelope import utcnow
    from credence_common.persistence.migrations import upgrade
    from services.payments import usecases
    from tests.integration.conftest import query

    db_uri = databases.create("payments", revision="0008")
    engine = make_engine(db_uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO payment_orders (order_number, payer_kind, payer_id, idempotency_key, amount_fen, "
                "currency, status, provider, pay_url, refunded_fen, refund_reserved_fen, created_at, expires_at) "
                "VALUES ('P1', 'candidate', 'cand-1', 'k1', 6000, 'CNY', 'partially_refunded', 'wechatpay', '', "
                "1000, 3000, '2026-11-20 10:00:00+00:00', '2026-11-20 10:30:00+00:00')")
            connection.exec_driver_sql(
                "INSERT INTO refunds (refund_number, order_number, amount_fen, reason, requested_by, request_key, "
                "status, attempts, requested_at, promised_by, provider_refund_id, completed_at) VALUES "
                "('R1', 'P1', 2000, 'processing', 'staff:f', 'k1', 'pending', 1, '2026-11-21 10:00:00+00:00', "
                "'2026-11-24', '50300000000001', NULL), "
                "('R2', 'P1', 1000, 'not accepted yet', 'staff:f', 'k2', 'pending', 1, "
                "'2026-11-21 10:00:00+00:00', '2026-11-24', NULL, NULL), "
                "('R3', 'P1', 1000, 'done', 'staff:f', 'k3', 'succeeded', 1, '2026-11-21 10:00:00+00:00', "
                "'2026-11-24', '50300000000003', '2026-11-21 10:01:00+00:00')")
    finally:
        engine.dispose()

    upgrade("payments", db_uri)
    assert query(db_uri, "select refund_number, next_check_at is not null, checks, abnormal_at from refunds "
                         "order by refund_number") == [("R1", True, 0, None), ("R2", False, 0, None),
                                                       ("R3", False, 0, None)]
    engine = make_engine(db_uri)
    try:
        with Session(engine) as session:
            assert usecases.refunds_to_check(session, utcnow() + timedelta(seconds=1)) == ["R1"]
            assert usecases.pending_refund_numbers(session) == ["R2"]
    finally:
        engine.dispose()

    _downgrade("payments", db_uri, "0008")
    assert query(db_uri, "select refund_number, status from refunds order by refund_number") == [
        ("R1", "pending"), ("R2", "pending"), ("R3", "succeeded")]
