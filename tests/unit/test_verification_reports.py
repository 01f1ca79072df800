"""Verification reports offline: the golden vectors in tests/golden/verification_reports give the verdicts
they promise, through the library and through the documented command, and regenerate byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credence_common.security import signing
from services.verification.domain import reports
from tests.golden import make_verification_report_vectors as golden

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ["valid", "expired", "wrong_key", "flipped_byte", "tampered_qr"]


def load(name: str) -> dict:
    return json.loads((golden.HERE / f"{name}.json").read_text(encoding="utf-8"))


def public_key():
    return signing.load_public_key((golden.HERE / "authority_public_key.pem").read_text(encoding="utf-8"))


def test_the_vectors_in_the_repo_are_the_ones_the_generator_writes():
    for name, text in golden.render().items():
        assert (golden.HERE / name).read_text(encoding="utf-8") == text, name


@pytest.mark.parametrize("name", VECTORS)
def test_each_golden_vector_gets_its_verdict(name):
    vector = load(name)
    verdict = reports.verify_report(vector["report"], public_key(), datetime.fromisoformat(vector["checked_at"]),
                                    vector["qr_payload"])
    assert verdict.verdict == vector["expected"] == {"valid": "valid", "expired": "expired",
                                                     "wrong_key": "invalid_signature",
                                                     "flipped_byte": "invalid_signature",
                                                     "tampered_qr": "qr_mismatch"}[name]


def test_a_report_that_is_not_one_is_malformed_not_a_crash():
    for thing in ({}, {"document": "x"}, {"document": {"expires_at": "soon"}, "signature": "x"}):
        assert reports.verify_report(thing, public_key(), datetime.now().astimezone()).verdict == "malformed"


def test_report_codes_carry_at_least_128_random_bits():
    codes = {reports.new_report_code() for _ in range(1000)}
    assert len(codes) == 1000 and all(len(code) == 32 and code.isalnum() for code in codes)  # 32 x 5 bits


@pytest.mark.parametrize("name, exit_code", [("valid", 0), ("wrong_key", 1), ("tampered_qr", 1)])
def test_the_offline_command_verifies_a_downloaded_report(tmp_path, name, exit_code):
    vector = load(name)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(vector["report"], ensure_ascii=False), encoding="utf-8")
    # the vectors' dates are fixed; 'valid' is checked against today's clock here, so give it a fresh expiry
    if name == "valid":
        document = dict(vector["report"]["document"], expires_at="2999-01-01T00:00:00+00:00")
        report.write_text(json.dumps(reports.sign_report(golden.AUTHORITY_KEY, document)), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "services.verification.domain.reports", "verify", str(report),
                             "--public-key", str(golden.HERE / "authority_public_key.pem"),
                             "--qr", vector["qr_payload"]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert result.stdout.startswith(vector["expected"] if name != "valid" else "valid")


def test_a_report_page_shows_what_became_of_its_subject_after_closure_and_expiry():
    now, later = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
    assert reports.report_state(now, later, None, "corrected") == "corrected"
    assert reports.report_state(now, later, None, "valid") == "valid"
    assert reports.report_state(later, later, None, "corrected") == "expired"
    assert reports.report_state(now, later, now, "revoked") == "closed"
    assert set(reports.STATE_MESSAGES) == {"valid", "expired", "closed", "revoked", "superseded", "corrected"}


RECORD = {"candidate_id": "cand-0", "holder_name": "王小明", "resident_id_number_masked": "110105********002X",
          "ticket_numbers": ["112600000011"], "violations": [], "programs": [
              {"program_code": "ZK-LAW", "program_name": "Law", "kind": "course_based", "graduated": False, "courses": [
                  {"course_code": "00015", "course_name": "English", "course_kind": "written", "required": True,
                   "state": "failed", "best_score": 58, "sitting": "2026-04"},
                  {"course_code": "00227", "course_name": "Company law", "course_kind": "written", "required": True,
                   "state": "passed", "best_score": 75, "sitting": "2026-04"},
                  {"course_code": "00249", "course_name": "Statistics", "course_kind": "written", "required": True,
                   "state": "exempted", "best_score": None, "sitting": None}]},
              {"program_code": "PSY", "program_name": "Counsellor", "kind": "composite", "outcome": "failed",
               "courses": []}]}


def test_an_education_record_report_states_achievements_only():
    from services.verification.usecases.reports import achievements

    stated = achievements(RECORD)
    assert stated.holder_name_masked == "王*明"
    [law] = stated.programs  # the failed composite program is not stated
    assert [(c.course_code, c.state, c.score) for c in law.courses] == [("00227", "passed", 75),
                                                                         ("00249", "exempted", None)]
    nothing = {**RECORD, "programs": [RECORD["programs"][1]]}
    assert achievements(nothing) is None


def test_a_report_request_names_a_certificate_or_the_record_not_both():
    from pydantic import ValidationError

    from credence_common.contracts.verification import RequestReport

    assert RequestReport.model_validate({"kind": "education_record"}).certificate_number is None
    assert RequestReport.model_validate({"certificate_number": "1"}).kind == "certificate"
    for wrong in ({}, {"kind": "education_record", "certificate_number": "1"}, {"kind": "diploma"}):
        with pytest.raises(ValidationError):
            RequestReport.model_validate(wrong)


def test_the_report_page_of_an_exam_record_lists_programs_without_the_full_name():
    from gateway import web
    from services.verification.usecases.reports import achievements

    answer = {"report_code": "A" * 32, "kind": "education_record", "state": "corrected", "message": "corrected",
              "education_record": achievements(RECORD).model_dump(mode="json"), "expires_at": "2026-12-31T00:00:00"}
    page = web.render_report(answer)
    assert "考籍在线验证报告" in page and 'data-result="corrected"' in page and "Company law 75 (2026-04)" in page
    assert "王小明" not in page and "English" not in page


def test_an_education_record_report_shows_only_the_last_four_of_the_id_number():
    from services.verification.usecases.reports import achievements

    assert achievements(RECORD).resident_id_number_masked == "**************002X"


def test_a_report_signed_with_the_longer_mask_is_masked_and_signed_again_for_the_public():
    from services.verification.usecases.reports import ReportSigner, public_signed_report

    signer = ReportSigner(golden.AUTHORITY_KEY, "https://verify.example.org")
    old = reports.sign_report(golden.AUTHORITY_KEY, {**golden.DOCUMENT, "certificate": {
        **golden.DOCUMENT["certificate"], "resident_id_number_masked": "110105********002X"}})
    public = public_signed_report(signer, old)
    assert public["document"]["certificate"]["resident_id_number_masked"] == "**************002X"
    assert {k: v for k, v in public["document"].items() if k != "certificate"} == \
        {k: v for k, v in old["document"].items() if k != "certificate"}
    checked_at = datetime.fromisoformat(golden.CHECKED_AT)
    assert reports.verify_report(public, public_key(), checked_at, golden.DOCUMENT["verify_url"]).verdict == "valid"
    assert public_signed_report(signer, public) is public  # already public: left as signed


@pytest.mark.parametrize("state, label, shown", [
    ("closed", "Report closed by the holder", "2026-12-02"), ("expired", "Report expired", "2026-12-31")])
def test_the_page_of_a_closed_or_expired_report_says_which_and_nothing_about_the_holder(state, label, shown):
    from gateway import web

    answer = {"report_code": "A" * 32, "kind": "certificate", "state": state, "message": reports.STATE_MESSAGES[state],
              "certificate": None, "signed_report": None, "requested_at": "2026-12-01T00:00:00+00:00",
              "expires_at": "2026-12-31T00:00:00+00:00",
              "closed_at": "2026-12-02T08:00:00+00:00" if state == "closed" else None}
    page = web.render_report(answer)
    assert f'data-result="{state}"' in page and label in page and shown in page
    assert "身份证号" not in page and "获证人" not in page


# --- the compact payload, the published keys and their rotation (issue #19 item 9) -------------------------

def signed_vectors() -> list[dict]:
    return json.loads((golden.HERE / "signed_vectors.json").read_text(encoding="utf-8"))


def golden_keys() -> dict:
    from services.verification.domain import report_keys

    return report_keys.trusted_from_key_set(json.loads((golden.HERE / "keys.json").read_text(encoding="utf-8")))


def test_the_signed_vectors_cover_every_verdict_and_both_forms():
    vectors = signed_vectors()
    assert {v["expected"] for v in vectors} == {"valid", "tampered", "expired", "unknown_key", "malformed"}
    for form in ("payload", "signed_report"):
        assert {v["expected"] for v in vectors if form in v} == {"valid", "tampered", "expired", "unknown_key",
                                                                  "malformed"}
    assert {"payload_previous_key_still_valid", "payload_retired_key", "json_previous_key_still_valid"} <= \
        {v["name"] for v in vectors}


@pytest.mark.parametrize("vector", signed_vectors(), ids=lambda v: v["name"])
def test_the_platform_gives_each_signed_vector_its_verdict(vector):
    at = datetime.fromisoformat(vector["checked_at"])
    if "payload" in vector:
        verdict = reports.verify_payload(vector["payload"], golden_keys(), at)
    else:
        verdict = reports.verify_signed(vector["signed_report"], golden_keys(), at)
    assert verdict.verdict == vector["expected"], verdict.message
    assert (verdict.document is not None) == (vector["expected"] in ("valid", "expired"))


def test_a_payload_carries_the_reports_own_signature_and_comes_back_whole():
    valid = load("valid")["report"]
    payload = reports.compact_payload(valid)
    assert payload.startswith("CRV1:") and set(payload[5:]) <= set(reports.BASE45)
    assert reports.signed_from_payload(payload) == valid  # the same signature as the JSON and the PDF carry


def test_a_payload_fits_one_qr_code_at_error_correction_q():
    import segno

    record = {**golden.DOCUMENT, "kind": "education_record", "education_record": {
        "holder_name_masked": "王*明", "resident_id_number_masked": "**************002X", "programs": [
            {"program_code": f"ZK-{p}", "program_name": "汉语言文学 Chinese Language and Literature", "kind":
             "course_based", "graduated": False, "outcome": None, "courses": [
                 {"course_code": f"{p}{c:04d}", "course_name": "中国现代文学史 History of Modern Chinese Literature",
                  "state": "passed", "score": 60 + c, "sitting": "2026-04"} for c in range(12)]} for p in range(2)]}}
    del record["certificate"]
    for document in (golden.DOCUMENT, record):
        code = segno.make(reports.compact_payload(reports.sign_report(golden.AUTHORITY_KEY, document)), error="q",
                          boost_error=False)
        assert code.mode == "alphanumeric" and code.version <= 40
    small = segno.make(reports.compact_payload(load("valid")["report"]), error="q", boost_error=False)
    assert small.version <= 20  # a certificate report: about 100 modules, well inside a phone camera's reach


def test_base45_agrees_with_rfc_9285():
    for raw, text in ((b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0")):
        assert reports.base45_encode(raw) == text and reports.base45_decode(text) == raw
    for bad in ("GGW", "a", "ZZZZ", "8"):  # over 65535, outside the alphabet, a lone character
        with pytest.raises(ValueError):
            reports.base45_decode(bad)


def test_a_payload_that_inflates_past_any_report_is_malformed_not_a_bomb():
    import zlib

    bomb = reports.PAYLOAD_PREFIX + reports.base45_encode(zlib.compress(b"\0" * (10 * 1024 * 1024), 9))
    assert reports.verify_payload(bomb, golden_keys(), datetime.fromisoformat(golden.CHECKED_AT)).verdict == \
        "malformed"


def test_previous_keys_verify_until_they_retire_and_the_key_set_lists_them():
    from services.verification.domain import report_keys

    current, previous = golden.current_key(), golden.previous_key()
    before, after = datetime.fromisoformat(golden.CHECKED_AT), datetime(2027, 1, 2, tzinfo=UTC)
    assert set(report_keys.trusted_keys(current, (previous,), before)) == {current.key_id, previous.key_id}
    assert set(report_keys.trusted_keys(current, (previous,), after)) == {current.key_id}
    published = report_keys.key_set(current, (previous,), before)
    assert [(k["kid"], k["status"]) for k in published["keys"]] == [(current.key_id, "current"),
                                                                     (previous.key_id, "previous")]
    assert published["keys"][1]["retire_after"] == golden.PREVIOUS_RETIRES
    assert [k["kid"] for k in report_keys.key_set(current, (previous,), after)["keys"]] == [current.key_id]
    from credence_common.contracts.verification import ReportKeySet

    ReportKeySet.model_validate(published)


def test_a_previous_key_is_configured_as_the_jwk_that_was_published_for_it():
    from services.verification.domain import report_keys

    entry = next(k for k in golden.key_set()["keys"] if k["status"] == "previous")
    [key] = report_keys.previous_keys(json.dumps([{**entry, "status": "current"}]))  # status is not trusted
    assert (key.key_id, key.status, key.retire_after) == (entry["kid"], "previous",
                                                           datetime.fromisoformat(golden.PREVIOUS_RETIRES))
    assert report_keys.previous_keys("") == () == report_keys.previous_keys("[]")


@pytest.mark.parametrize("setting, why", [
    ("{}", "JSON list"), ("not json", "is not JSON"), ('[{"kty": "RSA"}]', "[0]: a report key is a JWK"),
    ('[{"kty": "OKP", "crv": "Ed25519", "x": "SeRXoZgLAqw4nkS4wtNM9wbF8aEaCWQdZo_dYfe82Qk"}]',
     "needs its retire_after"),
    ('[{"kty": "OKP", "crv": "Ed25519", "x": "SeRXoZgLAqw4nkS4wtNM9wbF8aEaCWQdZo_dYfe82Qk", "kid": "0000000000000000", '
     '"retire_after": "2027-01-01"}]', "is not its key's id"),
    ('[{"kty": "OKP", "crv": "Ed25519", "x": "SeRXoZgLAqw4nkS4wtNM9wbF8aEaCWQdZo_dYfe82Qk", '
     '"retire_after": "2027-01-01T00:00:00"}]', "has no time zone"),
])
def test_a_previous_keys_setting_that_is_wrong_is_refused_and_named(setting, why):
    from services.verification.domain import report_keys

    with pytest.raises(ValueError, match="VERIFICATION_REPORT_PREVIOUS_KEYS_JSON") as refused:
        report_keys.previous_keys(setting)
    assert why in str(refused.value)


def test_the_service_refuses_to_start_with_a_wrong_rotation_setting():
    from types import SimpleNamespace

    from credence_common.config import ConfigurationRefused
    from services.verification.dependencies import ReportKeys

    provider = ReportKeys()
    provider.container = SimpleNamespace(config={"VERIFICATION_REPORT_SIGNING_KEY": "k",
                                                 "VERIFICATION_REPORT_PREVIOUS_KEYS_JSON": "[{}]"})
    with pytest.raises(ConfigurationRefused, match="PREVIOUS_KEYS_JSON"):
        provider.setup()
    provider.container.config.update(VERIFICATION_REPORT_PREVIOUS_KEYS_JSON="[]",
                                     VERIFICATION_REPORT_KEY_SINCE="yesterday")
    with pytest.raises(ConfigurationRefused, match="VERIFICATION_REPORT_KEY_SINCE"):
        provider.setup()
    provider.container.config.update(VERIFICATION_REPORT_KEY_SINCE="2026-11-20")
    provider.setup()
    assert provider.signer.current_key().not_before == datetime(2026, 11, 20, tzinfo=UTC)


def test_a_signature_check_answers_a_verdict_and_refuses_what_is_no_report():
    from credence_common.contracts.errors import InvalidInput
    from credence_common.contracts.validation import parse
    from credence_common.contracts.verification import ReportCheck
    from services.verification.domain import report_keys

    at = datetime.fromisoformat(golden.CHECKED_AT)
    vectors = {v["name"]: v for v in signed_vectors()}
    answer = report_keys.check(golden_keys(), parse(ReportCheck, {"payload": vectors["payload_tampered"]["payload"]}),
                               at)
    assert answer["verdict"] == "tampered" and answer["document"] is None
    answer = report_keys.check(golden_keys(), parse(ReportCheck, {"signed_report": load("valid")["report"]}), at)
    assert answer["verdict"] == "valid" and answer["document"] == golden.DOCUMENT
    with pytest.raises(InvalidInput) as refused:
        report_keys.check(golden_keys(), parse(ReportCheck, {"payload": "HC1:6BFOXN%TS3DH"}), at)
    assert refused.value.code == "malformed_report" and "CRV1" in refused.value.message
    for both_or_neither in ({}, {"payload": "CRV1:X", "signed_report": {}}):
        with pytest.raises(InvalidInput):
            parse(ReportCheck, both_or_neither)
