"""Personal data at rest (#17 item 7): an attacker with a copy of a service's database."""

from __future__ import annotations

from sqlalchemy import inspect, text

from credence_common.persistence.db import make_engine
from deploy.journey import run_journey
from tests.e2e.conftest import SECRETS
from tests.security.conftest import client_from


def every_stored_value(db_uri: str) -> tuple[str, dict[str, int]]:
    """Every text value in every column of every table, and how many rows each table has."""
    engine = make_engine(db_uri)
    values, counts = [], {}
    try:
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
                counts[table] = len(rows)
                values.extend(value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                              for row in rows for value in row if isinstance(value, (str, bytes)))
    finally:
        engine.dispose()
    return "\n".join(values), counts


def test_a_copy_of_the_certificates_database_reveals_no_holder_name_or_delivery_address(secure_platform, journey):
    # A second journey resending every request with an Idempotency-Key (as a retrying client does): the answers
    # kept for those retries (a confirmation's holds the name and address) are in the database too.
    retried = run_journey(secure_platform.gateway_url, say=lambda line: None, patience=30,
                          staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"], source_address="127.0.0.72")
    stored, counts = every_stored_value(secure_platform.env["CERTIFICATES_DB_URI"])
    # not a vacuous scan: both certificates, their certificate.issued events and the kept answers are there
    assert counts["certificates"] >= 2 and counts["outbox"] >= 2 and counts["idempotency_records"] >= 1, counts
    for run in (journey, retried):
        certificate = run["certificate"]
        for personal in (run["full_name"], certificate["delivery_address"], certificate["photo_reference"]):
            assert personal and personal not in stored, f"{personal!r} is stored in clear in certificates"

    # staff still read them through the API, and the printer's export still prints them
    staff = client_from("127.0.0.71")
    token = staff.post(secure_platform.gateway_url + "/api/v1/auth/staff-token", timeout=15, json={
        "username": "admin", "password": SECRETS["BOOTSTRAP_STAFF_PASSWORD"]}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    number = journey["certificate"]["certificate_number"]
    seen = staff.get(f"{secure_platform.gateway_url}/api/v1/certificates/by-number/{number}", headers=headers,
                     timeout=15)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["holder_name"], seen.json()["delivery_address"]) == (
        journey["full_name"], journey["certificate"]["delivery_address"])
    export = staff.get(f"{secure_platform.gateway_url}/api/v1/production-batches/{seen.json()['batch_id']}"
                       "/export.csv", headers=headers, timeout=15)
    assert export.status_code == 200, export.text
    printed = export.content.decode("utf-8-sig")
    assert journey["full_name"] in printed and journey["certificate"]["delivery_address"] in printed


def test_a_copy_of_the_scoring_database_reveals_no_candidate_name(secure_platform, journey):
    # the journey's candidate qualified, so scoring holds the name in its roster and its candidate_qualified event
    stored, counts = every_stored_value(secure_platform.env["SCORING_DB_URI"])
    assert counts["roster"] >= 1 and counts["outbox"] >= 1, counts
    assert journey["full_name"] not in stored, "the candidate's name is stored in clear in scoring"


def test_a_copy_of_the_payments_database_reveals_no_invoice_title(secure_platform, journey):
    # the journey's candidate asked for a personal invoice: its title is the candidate's name
    stored, counts = every_stored_value(secure_platform.env["PAYMENTS_DB_URI"])
    assert counts["payment_orders"] >= 1, counts
    assert journey["full_name"] not in stored, "the invoice title (the candidate's name) is stored in clear"
