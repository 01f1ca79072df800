"""Education-record reports (考籍验证报告): verification reads the exam record from scoring over RPC when the
holder asks, signs what was achieved, and marks the report once scoring corrects a result in it."""

from __future__ import annotations

import base64

import pytest

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput
from credence_common.security import signing
from services.scoring.service import ScoringService
from services.verification.domain import reports
from services.verification.service import VerificationService
from tests.integration.conftest import query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_result_imports import STAFF, roster
from tests.integration.test_score_reviews import OWNER, released_course_results
from tests.integration.test_scoring import EXPERT


def test_an_exam_record_report_states_achievements_is_signed_and_marked_after_a_correction(start_service):
    _, verification_config = start_service(VerificationService)
    _, scoring_config = start_service(ScoringService)
    roster(scoring_config)
    with (rpc_proxy("scoring", scoring_config) as scoring,
          rpc_proxy("verification", verification_config) as verification):
        with pytest.raises(Conflict) as nothing:  # cand-1 has no released result yet
            verification.request_report(signed_actor({"subject": "cand-1", "role": "candidate"}),
                                        {"kind": "education_record"})
        assert nothing.value.code == "nothing_to_report"
        with pytest.raises(InvalidInput):
            verification.request_report(OWNER, {"kind": "education_record", "certificate_number": "1"})
        released_course_results(scoring)
        scoring.grant_exemption(STAFF, {"candidate_id": "cand-0", "program_code": "ZK-LAW", "course_code": "00249",
                                        "reason": "credited from an earlier diploma"})
        view = verification.request_report(OWNER, {"kind": "education_record"})
        assert (view["kind"], view["state"], view["certificate_number"]) == ("education_record", "valid", None)

        answer = verification.report_answer(view["report_code"])
        record = answer["education_record"]
        assert record["holder_name_masked"] == "王*明" and record["resident_id_number_masked"] == "**************002X"
        [law] = record["programs"]
        # achievements only: the failed 00015 and the untaken 00233 are not stated
        assert {c["course_code"]: (c["state"], c["score"]) for c in law["courses"]} == {
            "00227": ("passed", 75), "00230": ("passed", 80), "00249": ("exempted", None)}
        assert law["graduated"] is False and answer["state"] == "valid"
        public_key = signing.load_public_key(verification.report_public_key()["public_key_pem"])
        assert reports.verify_report(answer["signed_report"], public_key, utcnow(), view["verify_url"]).verdict \
            == "valid"
        assert base64.b64decode(verification.report_pdf(OWNER, view["report_code"])).startswith(b"%PDF")
        assert [r["kind"] for r in verification.my_reports(OWNER)["reports"]] == ["education_record"]

        # consent works for a record report too: the verifier sees the full name, the holder sees the verifier
        share = verification.create_share_code(OWNER, view["report_code"], {"valid_hours": 2})
        full = verification.open_shared_report({"share_code": share["share_code"], "verifier_name": "李经理",
                                                "organisation": "某律师事务所", "purpose": "hiring"})
        assert full["holder_name"] == "王小明" and full["report"]["kind"] == "education_record"
        # the holder sees both openings: by its code above, and with the share code
        shared_access, by_code = verification.my_accesses(OWNER)["accesses"]
        assert (shared_access["channel"], shared_access["organisation"], shared_access["certificate_number"],
                shared_access["report_code"]) == ("share_code", "某律师事务所", None, view["report_id"])
        assert (by_code["channel"], by_code["report_code"]) == ("report_code", view["report_id"])

        # a re-check corrects a result: scoring's result_corrected event marks the earlier report
        failed_id = query(scoring_config["DB_URI"],
                          "select result_id from exam_results where course_code = '00015'")[0][0]
        review = scoring.request_score_review(OWNER, failed_id, {"reason": "I believe question 7 was misgraded"})
        scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "corrected", "new_score": 61,
                                                                 "note": "question 7 re-marked"})
        wait_for(lambda: verification.report_answer(view["report_code"])["state"] == "corrected",
                 what="the record report marked as corrected")
        assert "corrected" in verification.report_answer(view["report_code"])["message"]
        fresh = verification.request_report(OWNER, {"kind": "education_record"})
        fresh_law = verification.report_answer(fresh["report_code"])["education_record"]["programs"][0]
        assert fresh["state"] == "valid" and fresh_law["graduated"] is True
        assert {c["course_code"] for c in fresh_law["courses"]} == {"00015", "00227", "00230", "00249"}
