"""Scoring's personal data at rest (services/scoring/adapters/protection.py) in a real container, on SQLite and
PostgreSQL: the roster's names and the outbox stored encrypted, the qualification event still carrying the name, keys
rotated by ``credence scoring rotate-keys``."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from credence_common.security.crypto import KeyRing
from services.scoring.adapters.protection import DATA_KEYS
from services.scoring.keys_cli import app
from services.scoring.service import ScoringService
from tests.integration.conftest import publish_event, query, rpc_proxy, wait_for
from tests.integration.test_scoring import STAFF, confirmed, line, sign_off

OLD_KEYS = {"SCORING_DATA_KEYS": "k1=test-scoring-old-key", "SCORING_DATA_ACTIVE_KEY_ID": "k1"}
ROTATED_KEYS = {"SCORING_DATA_KEYS": "k2=test-scoring-new-key,k1=test-scoring-old-key",
                "SCORING_DATA_ACTIVE_KEY_ID": "k2"}


@pytest.fixture(autouse=True)
def _config_file_keys_afterwards():
    yield
    DATA_KEYS.reset()  # later tests in this process get the config file's keys again, not these test keys


def test_the_rosters_names_and_events_are_stored_encrypted_and_rotate(start_service, event_spy, tmp_path):
    container, config = start_service(ScoringService, **OLD_KEYS)
    db = config["DB_URI"]
    spy = event_spy("scoring", "credence.scoring.candidate_qualified.v1")
    publish_event(config["AMQP_URI"], confirmed("112600000001", "cand-1", "王小明"))
    wait_for(lambda: query(db, "select count(*) from roster") == [(1,)], what="roster")
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line("112600000001", 82)]})
        sign_off(scoring)
        scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
    assert spy.collect(1)[0]["data"]["full_name"] == "王小明"  # published in clear for certificates
    wait_for(lambda: query(db, "select count(*) from outbox where published_at is null") == [(0,)], what="relayed")

    stored = repr([query(db, f"select * from {table}") for table in ("roster", "outbox", "idempotency_records",
                                                                       "result_audit")])
    assert "王小明" not in stored
    (token,), = query(db, "select full_name_encrypted from roster")
    assert KeyRing.from_spec(OLD_KEYS["SCORING_DATA_KEYS"], "k1").decrypt(token) == "王小明"
    container.stop()

    settings = tmp_path / "scoring.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": db, **ROTATED_KEYS}))
    runner = CliRunner()
    result = runner.invoke(app, ["rotate-keys", "--config", str(settings), "--batch-size", "2"])
    assert result.exit_code == 0 and "under key k2" in result.output, result.output
    status = runner.invoke(app, ["key-status", "--config", str(settings)])
    assert status.exit_code == 0 and "k2" in status.output, status.output
    assert {row[0].split("$")[0] for row in query(db, "select full_name_encrypted from roster")
            + query(db, "select envelope_json from outbox")} == {"k2"}
    assert "Re-encrypted 0 row(s)" in runner.invoke(app, ["rotate-keys", "--config", str(settings)]).output
