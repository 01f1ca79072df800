"""After release: re-checks (复查), exemptions (免考) and the exam record (考籍), on a real database and broker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput
from services.scoring.service import ScoringService
from tests.integration.conftest import query, rpc_proxy, signed_actor
from tests.integration.test_result_imports import HEADER, STAFF, TICKETS, roster, upload
from tests.integration.test_scoring import EXPERT, sign_off

OWNER = signed_actor({"subject": "cand-0", "role": "candidate"})


def released_course_results(scoring) -> dict:
    ticket = TICKETS[0]
    upload(scoring, HEADER + f"{ticket},ZK-LAW,00015,2026-04,58\n{ticket},ZK-LAW,00227,2026-04,75\n"
                             f"{ticket},ZK-LAW,00230,2026-04,80\n")
    scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04"})
    return {r["course_code"] if "course_code" in r else r["result_id"]: r
            for r in scoring.results_for_candidate(OWNER, "cand-0")["results"]}


def test_a_recheck_that_corrects_a_fail_republishes_and_completes_the_program(start_service, event_spy):
    container, config = start_service(ScoringService)
    roster(config)
    corrected_spy = event_spy("scoring", "credence.scoring.result_corrected.v1")
    qualified_spy = event_spy("scoring", "credence.scoring.candidate_qualified.v1")
    with rpc_proxy("scoring", config) as scoring:
        released_course_results(scoring)
        scoring.grant_exemption(STAFF, {"candidate_id": "cand-0", "program_code": "ZK-LAW", "course_code": "00249",
                                        "reason": "credited from an earlier diploma"})
        record = scoring.candidate_record(OWNER, "cand-0")
        law = record["programs"][0]
        states = {c["course_code"]: c["state"] for c in law["courses"]}
        assert states == {"00015": "failed", "00227": "passed", "00230": "passed", "00233": "not_taken",
                          "00249": "exempted"} and law["graduated"] is False
        failed_id = query(config["DB_URI"], "select result_id from exam_results where course_code = '00015'")[0][0]
        with pytest.raises(Forbidden):
            scoring.request_score_review(signed_actor({"subject": "cand-1", "role": "candidate"}), failed_id,
                                         {"reason": "mine?"})
        review = scoring.request_score_review(OWNER, failed_id, {"reason": "I believe question 7 was misgraded"})
        assert review["state"] == "open" and review["old_score"] == 58
        with pytest.raises(Conflict):
            scoring.request_score_review(OWNER, failed_id, {"reason": "again please"})
        with pytest.raises(InvalidInput):
            scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "corrected", "note": "re-marked"})
        with pytest.raises(Forbidden) as recorder_closes:  # the clerk imported the file: not the re-checker
            scoring.close_score_review(STAFF, review["review_id"], {"resolution": "unchanged", "note": "fine"})
        assert recorder_closes.value.code == "same_person_cannot_sign"
        closed = scoring.close_score_review(EXPERT, review["review_id"], {
            "resolution": "corrected", "new_score": 61, "note": "question 7 re-marked"})
        assert closed["state"] == "corrected" and closed["new_score"] == 61
        with pytest.raises(Conflict):
            scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "unchanged", "note": "twice"})
        assert scoring.candidate_record(OWNER, "cand-0")["programs"][0]["graduated"] is True
        assert [r["state"] for r in scoring.score_reviews(OWNER, "cand-0")["reviews"]] == ["corrected"]
        history = scoring.result_history(STAFF, failed_id)["history"]
    assert history[-1]["action"] == "corrected" and history[-1]["after"] == {"final_score": 61, "outcome": "passed"}
    correction = corrected_spy.collect(1)[0]["data"]
    assert (correction["old_outcome"], correction["new_outcome"]) == ("failed", "passed")
    assert [e["data"]["program_code"] for e in qualified_spy.collect(1)] == ["ZK-LAW"]


def test_a_recheck_that_corrects_a_pass_to_a_fail_withdraws_the_qualification_it_gave(start_service, event_spy):
    """Issue #19 item 2, scoring's half: a composite program's corrected result, and a course-based program's
    graduation once a required course no longer counts, each withdraw the qualification under the id that
    candidate_qualified.v1 gave it (certificates' half: tests/integration/test_certificates.py)."""
    import json

    container, config = start_service(ScoringService)
    roster(config)
    qualified_spy = event_spy("scoring", "credence.scoring.candidate_qualified.v1")
    withdrawn_spy = event_spy("scoring", "credence.scoring.qualification_withdrawn.v1")
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, json.dumps({"ticket_number": TICKETS[0], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
                                    "machine_exam_score": 90, "drill_score": 90}) + "\n", "jsonl")
        sign_off(scoring)
        scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        composite = qualified_spy.collect(1)[0]["data"]
        review = scoring.request_score_review(OWNER, composite["result_id"], {"reason": "check the drill"})
        scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "corrected", "new_score": 40,
                                                                 "note": "drill marks were added twice"})
        withdrawn = withdrawn_spy.collect(1)[0]["data"]
        assert (withdrawn["result_id"], withdrawn["corrected_result_id"], withdrawn["review_id"]) == (
            composite["result_id"], composite["result_id"], review["review_id"])
        assert withdrawn["reason"] == "result_corrected" and withdrawn["program_code"] == "PSY-COUNSELLOR"

        # course-based: graduate (every required course passed or exempted), then lose a course on re-check
        ticket = TICKETS[0]
        upload(scoring, HEADER + f"{ticket},ZK-LAW,00015,2026-04,70\n{ticket},ZK-LAW,00227,2026-04,75\n"
                                 f"{ticket},ZK-LAW,00230,2026-04,80\n{ticket},ZK-LAW,00233,2026-04,66\n")
        scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04"})
        scoring.grant_exemption(STAFF, {"candidate_id": "cand-0", "program_code": "ZK-LAW", "course_code": "00249",
                                        "reason": "credited from an earlier diploma"})
        graduation = qualified_spy.collect(1)[0]["data"]
        assert graduation["program_code"] == "ZK-LAW"
        law_id = query(config["DB_URI"], "select result_id from exam_results where course_code = '00227'")[0][0]
        review = scoring.request_score_review(OWNER, law_id, {"reason": "essay"})
        scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "corrected", "new_score": 50,
                                                                 "note": "essay over-marked"})
        programs = {p["program_code"]: p for p in scoring.candidate_record(OWNER, "cand-0")["programs"]}
        assert programs["ZK-LAW"]["graduated"] is False
        lost = withdrawn_spy.collect(1)[0]["data"]
        assert (lost["result_id"], lost["corrected_result_id"]) == (graduation["result_id"], law_id)
        # a correction that leaves a pass a pass withdraws nothing
        other_id = query(config["DB_URI"], "select result_id from exam_results where course_code = '00230'")[0][0]
        review = scoring.request_score_review(OWNER, other_id, {"reason": "one more point?"})
        scoring.close_score_review(EXPERT, review["review_id"], {"resolution": "corrected", "new_score": 81,
                                                                 "note": "one point"})
    assert withdrawn_spy.drain(config["DB_URI"]) == []


def test_rechecks_only_within_the_window_and_only_after_release(start_service):
    container, config = start_service(ScoringService)
    roster(config)
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,40\n")
        sealed_id = query(config["DB_URI"], "select result_id from exam_results")[0][0]
        with pytest.raises(Conflict) as sealed:
            scoring.request_score_review(OWNER, sealed_id, {"reason": "too early"})
        assert sealed.value.code == "not_published"
        assert scoring.candidate_record(OWNER, "cand-0")["programs"] == []  # the embargo holds in the record too
        scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04"})
    from sqlalchemy.orm import Session

    from credence_common.persistence.db import make_engine
    from services.scoring.usecases import records

    engine = make_engine(config["DB_URI"])
    with Session(engine) as session, session.begin():
        with pytest.raises(Conflict) as late:
            records.request_review(session, "cand-0", sealed_id, "too late", now=utcnow() + timedelta(days=16))
        assert late.value.code == "review_window_closed"
    engine.dispose()


def test_violations_appear_in_the_record(start_service):
    import json

    container, config = start_service(ScoringService)
    roster(config)
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, json.dumps({"ticket_number": TICKETS[0], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
                                    "machine_exam_score": 90, "drill_score": 90, "violation": "deduction"}) + "\n",
               "jsonl")
        sign_off(scoring)
        scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        record = scoring.candidate_record(OWNER, "cand-0")
    assert record["violations"] == [{"program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
                                     "violation": "deduction"}]
    assert record["programs"][0]["outcome"] == "passed" and record["ticket_numbers"] == [TICKETS[0]]


def test_staff_correct_before_release_and_find_open_rechecks(start_service):
    container, config = start_service(ScoringService)
    roster(config)
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,48\n")
        result_id = query(config["DB_URI"], "select result_id from exam_results")[0][0]
        scoring.correct_result(STAFF, result_id, {"new_score": 84, "reason": "transcription error at the centre"})
        with pytest.raises(InvalidInput):
            scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04",
                                            "publish_at": "2030-01-01T00:00:00"})  # no UTC offset: ambiguous
        scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04"})
        with pytest.raises(Conflict):
            scoring.correct_result(STAFF, result_id, {"new_score": 85, "reason": "too late for this route"})
        mine = scoring.results_for_candidate(OWNER, "cand-0")["results"]
        assert mine[0]["course_code"] == "00015" and mine[0]["final_score"] == 84
        review = scoring.request_score_review(OWNER, result_id, {"reason": "please check the essay"})
        assert [r["review_id"] for r in scoring.open_score_reviews(STAFF)["reviews"]] == [review["review_id"]]
        history = scoring.result_history(STAFF, result_id)["history"]
    assert history[0]["action"] == "corrected" and history[0]["reason"] == "transcription error at the centre"


def test_a_transfer_between_regions_appears_in_the_record(start_service):
    from credence_common.contracts.events import CandidateTransferredV1
    from tests.integration.conftest import publish_event, wait_for

    container, config = start_service(ScoringService)
    roster(config)
    transfer = CandidateTransferredV1(transfer_id="tr-1", candidate_id="cand-0", from_region="11", to_region="44",
                                      reason="moved to Guangzhou for work", transferred_at=utcnow())
    publish_event(config["AMQP_URI"], transfer)
    publish_event(config["AMQP_URI"], transfer)  # a redelivery records nothing twice
    wait_for(lambda: query(config["DB_URI"], "select count(*) from region_transfers") == [(1,)], what="transfer")
    with rpc_proxy("scoring", config) as scoring:
        record = scoring.candidate_record(OWNER, "cand-0")
    assert [(t["from_region"], t["to_region"]) for t in record["transfers"]] == [("11", "44")]
