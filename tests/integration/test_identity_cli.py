"""The key-rotation command against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import yaml
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.identity import RegisterCandidate
from credence_common.persistence.db import make_engine
from credence_common.security.crypto import KeyRing
from services.identity import usecases
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.cli import app
from services.identity.domain import codes
from services.identity.models import OneTimeCode, SmsQueue, SmsReceipt
from tests.integration.conftest import query

IDS = ["11010519491231002X", "110105197001010011", "110105198503120127"]


def seed(engine, protection, count: int) -> None:
    for n in range(count):
        mobile = f"1381234567{n}"
        with Session(engine) as session, session.begin():
            code_id = f"code-{n}"
            mobile_index = protection.index(mobile, "mobile")
            session.add(OneTimeCode(code_id=code_id, mobile_index=mobile_index, client_index="c",
                                    purpose="registration",
                                    code_digest=codes.code_digest(protection.code_key, code_id, mobile_index,
                                                                  "registration", "123456"),
                                    created_at=utcnow(), expires_at=utcnow() + codes.CODE_TTL, wrong_tries=0))
        with Session(engine) as session, session.begin():
            view = usecases.register_candidate(session, protection, RegisterCandidate(
                full_name="王小明", resident_id_number=IDS[n], mobile=mobile, mobile_code="123456",
                email=f"user{n}@example.com", password="Tiger-lily 47 canoe", exam_region="11"))
            assert view.status == "pre_registered"


def test_rotate_keys_reencrypts_everything_and_can_be_rerun(databases, tmp_path):
    db_uri = databases.create("identity")
    engine = make_engine(db_uri)
    old = PersonalDataProtection(KeyRing.from_spec("k1=old-material", "k1"), "index-material")
    seed(engine, old, 3)
    config = tmp_path / "identity.yml"
    config.write_text(yaml.safe_dump({"DB_URI": db_uri, "IDENTITY_DATA_KEYS": "k2=new-material,k1=old-material",
                                      "IDENTITY_DATA_ACTIVE_KEY_ID": "k2"}))
    runner = CliRunner()
    status = runner.invoke(app, ["key-status", "--config", str(config)])
    assert status.exit_code == 0 and "k1" in status.output and "9" in status.output

    result = runner.invoke(app, ["rotate-keys", "--config", str(config), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 3 row(s)" in result.output
    prefixes = {value.split("$")[0] for row in query(db_uri, "select resident_id_encrypted, mobile_encrypted, "
                                                             "email_encrypted from candidates") for value in row}
    assert prefixes == {"k2"}
    again = runner.invoke(app, ["rotate-keys", "--config", str(config)])
    assert "Re-encrypted 0 row(s)" in again.output

    new_only = PersonalDataProtection(KeyRing.from_spec("k2=new-material", "k2"), "index-material")
    with Session(engine) as session:
        principal = usecases.login(session, new_only, "user1@example.com", "Tiger-lily 47 canoe")
        assert principal.role == "candidate"
        candidate = usecases.get_candidate(session, principal.subject)
        assert new_only.decrypt(candidate.resident_id_encrypted) == IDS[1]
    engine.dispose()


def test_rotate_keys_reencrypts_queued_texts_and_their_template_values_and_skips_emptied_ones(databases, tmp_path):
    db_uri = databases.create("identity")
    engine = make_engine(db_uri)
    old = KeyRing.from_spec("k1=old-material", "k1")
    now = utcnow()
    with Session(engine) as session, session.begin():
        session.add(SmsQueue(mobile_encrypted=old.encrypt("13812345678"), text_encrypted=old.encrypt("code 123456"),
                             purpose="sign_in", params_encrypted=old.encrypt('["123456", "5"]'), created_at=now,
                             next_attempt_at=now, attempts=0, state="pending"))
        for n in range(3):  # sent: their text and values were emptied (webhook: "", tencent_sms: NULL too)
            session.add(SmsQueue(mobile_encrypted=old.encrypt(f"1391234567{n}"), text_encrypted="", purpose=None,
                                 params_encrypted=None, created_at=now, next_attempt_at=now, attempts=1,
                                 state="sent", serial_no=f"2640:{n}"))
        session.add(SmsReceipt(serial_no="2640:0", status="delivered", description="DELIVRD", recorded_at=now))
    engine.dispose()
    config = tmp_path / "identity.yml"
    config.write_text(yaml.safe_dump({"DB_URI": db_uri, "IDENTITY_DATA_KEYS": "k2=new-material,k1=old-material",
                                      "IDENTITY_DATA_ACTIVE_KEY_ID": "k2"}))
    runner = CliRunner()
    result = runner.invoke(app, ["rotate-keys", "--config", str(config), "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 4 row(s)" in result.output  # and it ended: an emptied value is never stale
    rows = query(db_uri, "select mobile_encrypted, text_encrypted, params_encrypted from sms_queue "
                         "order by message_id")
    assert {v.split("$")[0] for v in rows[0]} == {"k2"} and {r[1:] for r in rows[1:]} == {("", None)}
    assert "Re-encrypted 0 row(s)" in runner.invoke(app, ["rotate-keys", "--config", str(config)]).output
    status = runner.invoke(app, ["key-status", "--config", str(config)])
    assert status.exit_code == 0 and "k2" in status.output
    shown = runner.invoke(app, ["sms-status", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "pending" in shown.output and "sent" in shown.output and "DELIVRD" in shown.output
    assert "1381234" not in shown.output and "1391234" not in shown.output
