"""Verification's privacy upkeep on a real database (SQLite and PostgreSQL): the retention job's use case on
rows dated in the past, and migration 0007 on rows written before it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.persistence.db import make_engine
from credence_common.persistence.migrations import upgrade
from services.verification import usecases
from tests.integration.conftest import query

NUMBER = "202611000000423"


def test_old_check_log_addresses_are_cut_to_their_network_and_old_rows_deleted(databases):
    db = databases.create("verification")
    now = utcnow()
    checks = [(1, "203.0.113.77"), (29, "203.0.113.78"), (31, "203.0.113.79"), (31, "2001:db8:abcd:12::9"),
              (31, ""), (100, "198.51.100.4"), (364, "198.51.100.5"), (366, "198.51.100.6"), (900, "10.1.2.3")]
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            for days, client in checks:
                connection.execute(text(
                    "INSERT INTO check_log (checked_at, certificate_number, outcome, client) "
                    "VALUES (:at, :number, 'valid', :client)"), {"at": now - timedelta(days=days), "number": NUMBER,
                                                                  "client": client})
            for days in (10, 400):
                connection.execute(text(
                    "INSERT INTO report_accesses (candidate_id, report_code, certificate_number, share_id, "
                    "verifier_name, organisation, purpose, accessed_at) VALUES ('cand-1', :code, :number, 's', "
                    "'张经理', 'HR', 'hiring', :at)"), {"code": f"R{days}", "number": NUMBER,
                                                          "at": now - timedelta(days=days)})
            for days, client in ((12, "192.0.2.12"), (40, "192.0.2.40")):  # openings by code carry an address
                connection.execute(text(
                    "INSERT INTO report_accesses (candidate_id, report_code, certificate_number, channel, client, "
                    "accessed_at) VALUES ('cand-1', :code, :number, 'report_qr', :client, :at)"),
                    {"code": f"R{days}", "number": NUMBER, "client": client, "at": now - timedelta(days=days)})
        retention = usecases.Retention(address_days=30, check_log_days=365, report_access_days=365)
        with Session(engine) as session, session.begin():
            done = usecases.apply_retention(session, retention, now)
        assert (done.addresses_truncated, done.checks_deleted, done.accesses_deleted) == (5, 2, 1)
        with Session(engine) as session, session.begin():  # a second replica, or the next hour: nothing left
            again = usecases.apply_retention(session, retention, now)
        assert (again.addresses_truncated, again.checks_deleted, again.accesses_deleted) == (0, 0, 0)
    finally:
        engine.dispose()
    assert [client for (client,) in query(db, "select client from check_log order by checked_at desc, check_id")] == [
        "203.0.113.77", "203.0.113.78",  # younger than 30 days: kept whole (the holder's and audit's view)
        "203.0.113.0/24", "2001:db8:abcd::/48", "", "198.51.100.0/24", "198.51.100.0/24"]
    assert query(db, "select report_code, client from report_accesses order by accessed_at desc") == [
        ("R10", ""), ("R12", "192.0.2.12"), ("R40", "192.0.2.0/24")]  # the report openings' addresses alike


def test_migration_0007_keeps_the_last_four_and_ends_share_codes_of_closed_reports(databases):
    db = databases.create("verification", revision="0006")
    now = utcnow()
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO verifiable_certificates (certificate_number, certificate_id, holder_name, "
                "holder_name_key, resident_id_number_masked, program_code, program_name, issued_on, status, "
                "updated_at, sequence) VALUES (:number, 'cert-1', '王小明', '王小明', '110105********002X', 'P', "
                "'Program', :today, 'valid', :now, 1)"), {"number": NUMBER, "today": now.date(), "now": now})
            for code, closed in (("CLOSED", now - timedelta(hours=1)), ("OPEN", None)):
                connection.execute(text(
                    "INSERT INTO verification_reports (report_code, kind, certificate_number, candidate_id, "
                    "signed_json, requested_at, expires_at, closed_at) VALUES (:code, 'certificate', :number, "
                    "'cand-1', '{}', :now, :later, :closed)"),
                    {"code": code, "number": NUMBER, "now": now, "later": now + timedelta(days=30), "closed": closed})
            for share_id, code, used in (("s1", "CLOSED", None), ("s2", "CLOSED", now), ("s3", "OPEN", None)):
                connection.execute(text(
                    "INSERT INTO share_codes (share_id, code_digest, report_code, candidate_id, created_at, "
                    "expires_at, used_at) VALUES (:id, :digest, :code, 'cand-1', :now, :later, :used)"),
                    {"id": share_id, "digest": share_id * 10, "code": code, "now": now,
                     "later": now + timedelta(days=1), "used": used})
    finally:
        engine.dispose()
    upgrade("verification", db, "head")
    assert query(db, "select resident_id_number_masked from verifiable_certificates") == [("**************002X",)]
    states = {share_id: revoked is not None for share_id, revoked in
              query(db, "select share_id, revoked_at from share_codes")}
    assert states == {"s1": True, "s2": False, "s3": False}  # used stays used; the open report's code stays open


def test_migration_0008_hashes_report_codes_in_place_and_the_old_code_still_opens_its_report(databases):
    import json

    from credence_common.security import signing
    from services.verification.domain import reports
    from services.verification.usecases.reports import ReportSigner, report_answer

    db = databases.create("verification", revision="0007")
    now = utcnow()
    key = signing.load_private_key("migration-0008 test key")
    signer = ReportSigner(key, "https://verify.example.org")
    code = reports.new_report_code()
    document = {"report_code": code, "kind": "certificate", "issuer": "Credence", "certificate": {
        "certificate_number": NUMBER, "holder_name_masked": "王*明", "resident_id_number_masked": "**************002X",
        "program_code": "P", "program_name": "Program", "issued_on": now.date().isoformat()},
        "requested_at": now.isoformat(), "expires_at": (now + timedelta(days=30)).isoformat(),
        "verify_url": signer.verify_url(code)}
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO verifiable_certificates (certificate_number, certificate_id, holder_name, "
                "holder_name_key, resident_id_number_masked, program_code, program_name, issued_on, status, "
                "updated_at, sequence) VALUES (:number, 'cert-1', '王小明', '王小明', '**************002X', 'P', "
                "'Program', :today, 'valid', :now, 1)"), {"number": NUMBER, "today": now.date(), "now": now})
            connection.execute(text(
                "INSERT INTO verification_reports (report_code, kind, certificate_number, candidate_id, signed_json, "
                "requested_at, expires_at) VALUES (:code, 'certificate', :number, 'cand-1', :signed, :now, :later)"),
                {"code": code, "number": NUMBER, "now": now, "later": now + timedelta(days=30),
                 "signed": json.dumps(reports.sign_report(key, document), ensure_ascii=False)})
            connection.execute(text(
                "INSERT INTO share_codes (share_id, code_digest, report_code, candidate_id, created_at, expires_at) "
                "VALUES ('s1', 'd1', :code, 'cand-1', :now, :later)"),
                {"code": code, "now": now, "later": now + timedelta(days=1)})
        upgrade("verification", db, "head")
        for table in ("verification_reports", "share_codes"):
            assert code not in str(query(db, f"select * from {table}")), table
        with Session(engine) as session:
            answer = report_answer(session, signer, code.lower())
        assert answer.state == "valid" and answer.certificate.holder_name_masked == "王*明"
        verdict = reports.verify_report(answer.signed_report, key.public_key(), now, signer.verify_url(code))
        assert verdict.verdict == "valid"  # the document as signed, its code put back
    finally:
        engine.dispose()


def test_migration_0010_keeps_earlier_share_code_accesses_as_such_and_can_be_undone(databases):
    from tests.integration.test_migrations import _downgrade

    db = databases.create("verification", revision="0009")
    now = utcnow()
    engine = make_engine(db)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO report_accesses (candidate_id, report_code, certificate_number, share_id, verifier_name, "
                "organisation, purpose, accessed_at) VALUES ('cand-1', 'R1', :number, 's1', '张经理', 'HR', 'hiring', "
                ":at)"), {"number": NUMBER, "at": now})
            connection.execute(text(
                "INSERT INTO check_log (checked_at, certificate_number, outcome, client) VALUES (:at, :number, "
                "'valid', '203.0.113.7')"), {"at": now, "number": NUMBER})
        upgrade("verification", db, "0010")
        # before 0010 only share codes were recorded, without an address; checks said nothing of who or why
        assert query(db, "select channel, client, outcome, verifier_name from report_accesses") == [
            ("share_code", "", None, "张经理")]
        assert query(db, "select client, organisation, purpose from check_log") == [("203.0.113.7", None, None)]
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO report_accesses (candidate_id, report_code, certificate_number, channel, client, "
                "outcome, accessed_at) VALUES ('cand-1', 'R1', :number, 'report_qr', '192.0.2.1', 'valid', :at)"),
                {"number": NUMBER, "at": now})
        _downgrade("verification", db, "0009")  # openings by code were not recorded before: they go
        assert query(db, "select report_code, verifier_name from report_accesses") == [("R1", "张经理")]
    finally:
        engine.dispose()

