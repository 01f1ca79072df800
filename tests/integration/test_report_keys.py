"""Rotating the report key in a real verification container: a report downloaded under the old key still verifies
with the key set the service publishes after the rotation, until the old key retires; new reports carry the new
key. Judged by the standalone verifier (verifier/), as a third party would."""

from __future__ import annotations

import base64
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import InvalidInput
from services.verification.service import VerificationService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_verification import NUMBER, issued

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "verifier" / "src"))
import credence_report_verifier as verifier  # noqa: E402

HOLDER = signed_actor({"subject": "cand-1", "role": "candidate"})


def report_and_pdf(verification) -> tuple[str, bytes]:
    code = verification.request_report(HOLDER, {"certificate_number": NUMBER})["report_code"]
    return code, base64.b64decode(verification.report_pdf(HOLDER, code))


def test_a_report_signed_before_a_rotation_verifies_after_it_until_the_old_key_retires(container_factory,
                                                                                        service_config):
    config = service_config("verification", PUBLIC_BASE_URL="https://verify.example.org",
                            VERIFICATION_REPORT_SIGNING_KEY="integration: the old report key")
    old_container = container_factory(VerificationService, config)
    old_container.start()
    publish_event(config["AMQP_URI"], issued().model_copy(update={"sequence": 3}))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from verifiable_certificates") == [(1,)],
             what="read model")
    with rpc_proxy("verification", config) as verification:
        before = verification.report_keys()
        old_code, old_pdf = report_and_pdf(verification)
    [old_entry] = before["keys"]
    assert old_entry["status"] == "current" and old_entry["not_before"] is None
    assert verifier.verify_pdf(old_pdf, verifier.load_keys(json.dumps(before)), scan=False).verdict == "valid"
    old_container.stop()

    # the operator's rotation: a new signing key, and the old key's published JWK kept with a retire date
    since, retires = utcnow(), utcnow() + timedelta(days=31)
    previous_keys = json.dumps([{**old_entry, "retire_after": retires.isoformat()}])
    rotated = {**config, "VERIFICATION_REPORT_SIGNING_KEY": "integration: the new report key",
               "VERIFICATION_REPORT_KEY_SINCE": since.isoformat(),
               "VERIFICATION_REPORT_PREVIOUS_KEYS_JSON": previous_keys}
    new_container = container_factory(VerificationService, rotated)
    new_container.start()
    with rpc_proxy("verification", rotated) as verification:
        after = verification.report_keys()
        new_code, new_pdf = report_and_pdf(verification)
        old_answer = verification.report_answer(old_code)
        old_payload_check = verification.check_report({"signed_report": old_answer["signed_report"]})
        with pytest.raises(InvalidInput) as refused:
            verification.check_report({"payload": "not a payload"})
    assert refused.value.code == "malformed_report"
    current, previous = after["keys"]
    assert (current["status"], previous["status"], previous["kid"]) == ("current", "previous", old_entry["kid"])
    assert current["kid"] != old_entry["kid"] and datetime.fromisoformat(current["not_before"]) == since
    assert datetime.fromisoformat(previous["retire_after"]) == retires

    published = verifier.load_keys(json.dumps(after))
    old_result = verifier.verify_pdf(old_pdf, published, scan=False)
    assert old_result.verdict == "valid" and old_result.key_id == old_entry["kid"], old_result.message
    new_result = verifier.verify_pdf(new_pdf, published, scan=False)
    assert new_result.verdict == "valid" and new_result.key_id == current["kid"]
    # what is answered (and downloaded) from now on is signed with today's key, so it outlives the old key (and a
    # leaked key can be dropped at once: docs/operations.md)
    assert old_payload_check["verdict"] == "valid" and old_payload_check["key_id"] == current["kid"]
    assert old_answer["signed_report"]["document"]["report_code"] == old_code

    # once the old key has retired, what it signed is no longer trusted; a copy of the keys from before the
    # rotation does not know the new key
    assert verifier.verify_pdf(old_pdf, published, now=retires + timedelta(seconds=1), scan=False).verdict == \
        "unknown_key"
    assert verifier.verify_pdf(new_pdf, verifier.load_keys(json.dumps(before)), scan=False).verdict == "unknown_key"
    assert new_code != old_code
