"""Payments' personal data at rest (services/payments/adapters/protection.py) in a real container, on SQLite and
PostgreSQL: an order's invoice details stored encrypted, read in clear by staff; ``credence payments
rotate-keys`` moves them to the active key."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from credence_common.security.crypto import KeyRing
from services.payments.adapters.protection import DATA_KEYS
from services.payments.keys_cli import app
from services.payments.service import PaymentsService
from tests.integration.conftest import publish_event, query, rpc_proxy
from tests.integration.test_payments import STAFF, awaiting, dues_of, institution

OLD_KEYS = {"PAYMENTS_DATA_KEYS": "k1=test-payments-old-key", "PAYMENTS_DATA_ACTIVE_KEY_ID": "k1"}
ROTATED_KEYS = {"PAYMENTS_DATA_KEYS": "k2=test-payments-new-key,k1=test-payments-old-key",
                "PAYMENTS_DATA_ACTIVE_KEY_ID": "k2"}
TITLE, TAX_NUMBER = "北京某职业培训学校", "91110000600037341L"


@pytest.fixture(autouse=True)
def _config_file_keys_afterwards():
    yield
    DATA_KEYS.reset()  # later tests in this process get the config file's keys again, not these test keys


def test_invoice_details_are_stored_encrypted_read_by_staff_and_rotate(start_service, tmp_path):
    container, config = start_service(PaymentsService, **OLD_KEYS)
    db = config["DB_URI"]
    publish_event(config["AMQP_URI"], awaiting(payer_kind="institution", payer_id="inst-1"))
    due = dues_of(config, institution(), "institution", "inst-1", 1)[0]
    with rpc_proxy("payments", config) as payments:
        order = payments.create_order(institution(), {"due_ids": [due["due_id"]], "invoice": {
            "title": TITLE, "tax_number": TAX_NUMBER}}, "key-1")
        invoice = payments.order(STAFF, order["order_number"])["invoice"]
        assert (invoice["title"], invoice["tax_number"]) == (TITLE, TAX_NUMBER)
    stored = repr(query(db, "select * from payment_orders") + query(db, "select * from idempotency_records"))
    assert TITLE not in stored and TAX_NUMBER not in stored
    (title, tax_number), = query(db, "select invoice_title_encrypted, invoice_tax_number_encrypted "
                                     "from payment_orders")
    keyring = KeyRing.from_spec(OLD_KEYS["PAYMENTS_DATA_KEYS"], "k1")
    assert (keyring.decrypt(title), keyring.decrypt(tax_number)) == (TITLE, TAX_NUMBER)
    container.stop()

    settings = tmp_path / "payments.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": db, **ROTATED_KEYS}))
    runner = CliRunner()
    result = runner.invoke(app, ["rotate-keys", "--config", str(settings), "--batch-size", "1"])
    assert result.exit_code == 0 and "under key k2" in result.output, result.output
    assert {value.split("$")[0] for value in query(db, "select invoice_title_encrypted, "
                                                       "invoice_tax_number_encrypted from payment_orders")[0]} == {"k2"}
    assert "Re-encrypted 0 row(s)" in runner.invoke(app, ["rotate-keys", "--config", str(settings)]).output
