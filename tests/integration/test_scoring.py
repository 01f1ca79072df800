"""Scoring in a real container: the roster from identity's events, batch recording, release."""

from __future__ import annotations

import eventlet
import pytest

from credence_common.contracts.envelope import make_envelope, utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput
from credence_common.contracts.events import CandidateConfirmedV1
from services.scoring.service import ScoringService
from tests.integration.conftest import handled, publish_event, query, rpc_proxy, signed_actor, signed_batch, wait_for

# the clerk records, imports and releases (every staff role, as an administrator might hold them); the two experts
# sign off what the clerk recorded: the recorder of a result never signs it (services/scoring/domain/)
STAFF = signed_actor({"subject": "staff:clerk", "role": "staff"})


EXPERT = signed_actor({"subject": "staff:expert2", "role": "staff"})
OTHER_EXPERT = signed_actor({"subject": "staff:expert3", "role": "staff", "staff_roles": ["expert"]})


def sign_off(scoring, program_code: str = "PSY-COUNSELLOR", sitting: str = "2026-11") -> None:
    """Both experts agree with the formula's suggestion for every result awaiting evaluation."""
    for item in scoring.evaluation_queue(EXPERT, program_code, sitting)["items"]:
        for expert in (EXPERT, OTHER_EXPERT):
            scoring.evaluate_result(expert, item["result_id"], {"decision": item["suggested_outcome"]})


def confirmed(ticket_number: str, candidate_id: str, name: str = "王小明") -> CandidateConfirmedV1:
    return CandidateConfirmedV1(candidate_id=candidate_id, ticket_number=ticket_number, full_name=name,
                                        resident_id_number_masked="110105********002X", exam_region="11",
                                        method="online", confirmed_at=utcnow())


def line(ticket: str, score: int, sitting: str = "2026-11") -> dict:
    return {"ticket_number": ticket, "program_code": "PSY-COUNSELLOR", "sitting": sitting, "final_score": score}


def test_results_are_embargoed_until_published_and_passing_candidates_qualify(start_service, event_spy):
    container, config = start_service(ScoringService)
    amqp = config["AMQP_URI"]
    spy = event_spy("scoring")
    roster_event = make_envelope(confirmed("112600000001", "cand-1"))
    other = make_envelope(confirmed("112600000002", "cand-2", "李四"))
    with handled(container, "handle_candidate_confirmed", roster_event.id, roster_event.id, other.id):
        publish_event(amqp, confirmed("112600000001", "cand-1"), roster_event)
        publish_event(amqp, confirmed("112600000001", "cand-1"), roster_event)  # redelivered: no effect
        publish_event(amqp, confirmed("112600000002", "cand-2", "李四"), other)
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(2,)], what="roster")
    assert query(config["DB_URI"], "select count(*) from processed_events") == [(2,)]

    with rpc_proxy("scoring", config) as scoring:
        assert scoring.record_results(STAFF, {"results": [line("112600000001", 82), line("112600000002", 41)]}) == {
            "recorded": 2}
        before = scoring.results_for_candidate(STAFF, "cand-1")["results"]
        assert before[0]["status"] == "evaluating" and before[0]["final_score"] is None

        held_back = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert held_back["published"] == 0 and held_back["awaiting_evaluation"] == 2  # no experts yet
        sign_off(scoring)
        outcome = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert {k: outcome[k] for k in ("published", "passed", "failed", "awaiting_evaluation", "state")} == {
            "published": 2, "passed": 1, "failed": 1, "awaiting_evaluation": 0, "state": "published"}
        after = scoring.results_for_candidate(STAFF, "cand-1")["results"]
        assert after[0]["status"] == "passed" and after[0]["final_score"] == 82
        assert scoring.results_for_candidate(STAFF, "cand-2")["results"][0]["status"] == "failed"

        # the batched read the gateway uses: one query, each read checked and answered on its own
        own = signed_actor({"subject": "cand-1", "role": "candidate"})
        other = signed_actor({"subject": "cand-2", "role": "candidate"})
        outcomes = scoring.results_for_candidates([
            {"actor": own, "candidate_id": "cand-1"}, {"actor": other, "candidate_id": "cand-1"},
            {"actor": STAFF, "candidate_id": "cand-2"}, {"actor": own, "candidate_id": "nobody"},
            {"candidate_id": 7}])
        assert outcomes[0] == {"answer": {"results": after}}
        assert outcomes[1]["refusal"]["code"] == "forbidden"
        assert outcomes[2]["answer"]["results"][0]["final_score"] == 41
        assert outcomes[3]["refusal"]["code"] == "forbidden"
        assert outcomes[4]["refusal"]["code"] == "invalid_batch"
        with pytest.raises(InvalidInput):
            scoring.results_for_candidates([{"actor": STAFF, "candidate_id": "cand-1"}] * 201)
        # as the gateway sends it: the actors of the batch signed once, in the order of the reads
        batch = signed_batch([("cand-1", "candidate"), ("cand-2", "candidate"), ("staff:clerk", "staff")])
        outcomes = scoring.results_for_candidates(
            [{"candidate_id": "cand-1"}, {"candidate_id": "cand-1"}, {"candidate_id": "cand-2"}], batch)
        assert outcomes[0] == {"answer": {"results": after}} and outcomes[1]["refusal"]["code"] == "forbidden"
        assert outcomes[2]["answer"]["results"][0]["final_score"] == 41
        # a token for another number of reads, or a single actor's token, vouches for none of them
        for wrong in (batch, own):
            assert [o["refusal"]["code"] for o in scoring.results_for_candidates(
                [{"candidate_id": "cand-1"}] * 2, wrong)] == ["actor_not_signed"] * 2

        with pytest.raises(Conflict) as already:
            scoring.record_results(STAFF, {"results": [line("112600000001", 90)]})
        assert already.value.code == "result_already_published"
        again = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert again["published"] == 0

    events = spy.collect(3)
    types = sorted(e["type"] for e in events)
    assert types == ["credence.scoring.candidate_qualified.v1", "credence.scoring.result_published.v1",
                     "credence.scoring.result_published.v1"]
    qualified = next(e for e in events if e["type"] == "credence.scoring.candidate_qualified.v1")
    assert qualified["data"]["candidate_id"] == "cand-1" and qualified["data"]["full_name"] == "王小明"
    assert qualified["data"]["program_name"] == "Psychological Counsellor (Foundation)"
    assert spy.drain(config["DB_URI"]) == []


def test_a_batch_with_one_bad_line_records_nothing(start_service):
    container, config = start_service(ScoringService)
    publish_event(config["AMQP_URI"], confirmed("112600000001", "cand-1"))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(1,)], what="roster")
    with rpc_proxy("scoring", config) as scoring:
        with pytest.raises(InvalidInput) as unknown:
            scoring.record_results(STAFF, {"results": [line("112600000001", 70), line("119999999999", 70)]})
        assert unknown.value.code == "unknown_ticket_number"
        assert unknown.value.details == [{"field": "results.1.ticket_number", "message": "unknown ticket number"}]
        with pytest.raises(InvalidInput) as out_of_range:
            scoring.record_results(STAFF, {"results": [line("112600000001", 101)]})
        assert out_of_range.value.details[0]["field"] == "results.0.final_score"
        with pytest.raises(InvalidInput):
            scoring.record_results(STAFF, {"results": [dict(line("112600000001", 70), final_score="70")]})
        with pytest.raises(InvalidInput):
            scoring.record_results(STAFF, {"results": []})
    assert query(config["DB_URI"], "select count(*) from exam_results") == [(0,)]


def test_concurrent_publications_publish_each_result_once(start_service, event_spy):
    container, config = start_service(ScoringService)
    tickets = [f"1126000000{n:02d}" for n in range(1, 7)]
    for n, ticket in enumerate(tickets):
        publish_event(config["AMQP_URI"], confirmed(ticket, f"cand-{n}"))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(6,)], what="roster")
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line(t, 50 + n * 5) for n, t in enumerate(tickets)]})
    spy = event_spy("scoring", "credence.scoring.result_published.v1")
    with rpc_proxy("scoring", config) as scoring:
        sign_off(scoring)

    def publish(_):
        with rpc_proxy("scoring", config) as proxy:
            try:
                outcome = proxy.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
                return outcome["published"]
            except Conflict:
                return 0

    assert sum(eventlet.GreenPool(4).imap(publish, range(4))) == 6
    assert len(spy.collect(6)) == 6 and spy.drain(config["DB_URI"]) == []


def test_merged_tickets_move_results_to_the_primary_number(start_service):
    from credence_common.contracts.events import TicketsLinkedV1, TicketsMergedV1

    container, config = start_service(ScoringService)
    amqp, db = config["AMQP_URI"], config["DB_URI"]
    publish_event(amqp, confirmed("112600000001", "cand-1"))
    wait_for(lambda: query(db, "select count(*) from roster") == [(1,)], what="roster")
    publish_event(amqp, TicketsLinkedV1(candidate_id="cand-1", primary_ticket_number="112600000001",
                                        ticket_numbers=["440912345678", "441012345678"], full_name="王小明",
                                        resident_id_number_masked="110105********002X", linked_at=utcnow()))
    wait_for(lambda: query(db, "select count(*) from roster") == [(3,)], what="linked tickets")
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line("440912345678", 70, "2025-04"),
                                                   line("441012345678", 65, "2025-10"),
                                                   line("112600000001", 80, "2025-10")]})
    publish_event(amqp, TicketsMergedV1(candidate_id="cand-1", primary_ticket_number="112600000001",
                                        merged_ticket_numbers=["440912345678", "441012345678"], merged_at=utcnow()))
    wait_for(lambda: query(db, "select count(*) from roster where merged_into is not null") == [(2,)], what="merge")
    rows = sorted(query(db, "select ticket_number, sitting, final_score from exam_results"))
    # the 2025-10 result under 441012345678 clashes with the primary's own and stays put; nothing is lost
    assert rows == [("112600000001", "2025-04", 70), ("112600000001", "2025-10", 80),
                    ("441012345678", "2025-10", 65)]
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line("440912345678", 90, "2026-11")]})  # under a merged number
    assert query(db, "select ticket_number from exam_results where sitting = '2026-11'") == [("112600000001",)]


def test_scoring_checks_who_asks_itself(start_service):
    from credence_common.contracts.errors import Forbidden

    container, config = start_service(ScoringService)
    candidate = signed_actor({"subject": "cand-1", "role": "candidate"})
    with rpc_proxy("scoring", config) as scoring:
        with pytest.raises(Forbidden):
            scoring.record_results(candidate, {"results": [line("112600000001", 99)]})
        with pytest.raises(Forbidden):
            scoring.publish_results(candidate, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        with pytest.raises(Forbidden):
            scoring.results_for_candidate(candidate, "cand-2")
        assert scoring.results_for_candidate(candidate, "cand-1") == {"results": []}


def test_two_different_experts_must_agree_and_a_disagreement_waits_for_a_decision(start_service):
    container, config = start_service(ScoringService)
    publish_event(config["AMQP_URI"], confirmed("112600000001", "cand-1"))
    publish_event(config["AMQP_URI"], confirmed("112600000002", "cand-2"))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(2,)], what="roster")
    third = signed_actor({"subject": "staff:chief", "role": "staff"})
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line("112600000001", 75), line("112600000002", 62)]})
        items = {i["ticket_number"]: i for i in scoring.evaluation_queue(STAFF, "PSY-COUNSELLOR", "2026-11")["items"]}
        first, second = items["112600000001"]["result_id"], items["112600000002"]["result_id"]
        with pytest.raises(Forbidden) as recorder_signs:  # the clerk recorded it: never one of its signers
            scoring.evaluate_result(STAFF, first, {"decision": "passed"})
        assert (recorder_signs.value.code, recorder_signs.value.details) == (
            "same_person_cannot_sign", [{"field": "duty", "message": "recorded"}])
        assert scoring.evaluate_result(OTHER_EXPERT, first, {"decision": "passed"})["state"] == "pending"
        with pytest.raises(Conflict) as same_expert:
            scoring.evaluate_result(OTHER_EXPERT, first, {"decision": "passed"})
        assert same_expert.value.code == "already_signed"
        assert scoring.evaluate_result(EXPERT, first, {"decision": "passed"}) == {
            "result_id": first, "state": "agreed", "evaluated_outcome": "passed"}

        scoring.evaluate_result(OTHER_EXPERT, second, {"decision": "passed"})
        assert scoring.evaluate_result(EXPERT, second, {"decision": "failed"})["state"] == "held"
        for signer in (EXPERT, OTHER_EXPERT):
            with pytest.raises(Forbidden) as reviewer_decides:
                scoring.decide_held_result(signer, second, {"decision": "failed", "reason": "drill video reviewed"})
            assert (reviewer_decides.value.code, reviewer_decides.value.details) == (
                "same_person_cannot_sign", [{"field": "duty", "message": "signed"}])
        with pytest.raises(Forbidden) as recorder_decides:
            scoring.decide_held_result(STAFF, second, {"decision": "failed", "reason": "drill video reviewed"})
        assert recorder_decides.value.details == [{"field": "duty", "message": "recorded"}]
        published = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert (published["published"], published["awaiting_evaluation"]) == (1, 1)  # the held one waits
        assert scoring.results_for_candidate(STAFF, "cand-2")["results"][0]["status"] == "evaluating"
        scoring.decide_held_result(third, second, {"decision": "failed", "reason": "drill video reviewed"})
        scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert scoring.results_for_candidate(STAFF, "cand-2")["results"][0]["status"] == "failed"
        history = scoring.result_history(STAFF, second)["history"]
    assert [h["action"] for h in history] == ["recorded", "evaluated", "evaluated", "decided", "published"]


def schedule_one_signed_result(start_service, delay):
    """A signed-off result of cand-1 with its release scheduled ``delay`` from now."""
    container, config = start_service(ScoringService)
    publish_event(config["AMQP_URI"], confirmed("112600000001", "cand-1"))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(1,)], what="roster")
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line("112600000001", 75)]})
        sign_off(scoring)
        scheduled = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
                                                    "publish_at": (utcnow() + delay).isoformat()})
    return config, scheduled


def test_a_scheduled_release_keeps_results_sealed_until_its_time(start_service):
    from datetime import timedelta

    config, scheduled = schedule_one_signed_result(start_service, timedelta(seconds=3))
    with rpc_proxy("scoring", config) as scoring:
        assert scheduled["state"] == "scheduled" and scheduled["published"] == 0
        sealed = scoring.results_for_candidate(signed_actor({"subject": "cand-1", "role": "candidate"}),
                                               "cand-1")["results"]
        assert sealed[0]["status"] == "evaluating" and sealed[0]["final_score"] is None
        released = wait_for(lambda: scoring.results_for_candidate(STAFF, "cand-1")["results"][0]["status"]
                            != "evaluating", timeout=20, what="the timer published the release")
        assert released
        assert scoring.results_for_candidate(STAFF, "cand-1")["results"][0]["final_score"] == 75
    assert query(config["DB_URI"], "select state, published from releases") == [("published", 1)]


def test_a_scheduled_release_can_be_cancelled_before_its_time(start_service):
    from datetime import timedelta

    config, scheduled = schedule_one_signed_result(start_service, timedelta(days=1))
    with rpc_proxy("scoring", config) as scoring:
        assert [r["state"] for r in scoring.list_releases(STAFF)["releases"]] == ["scheduled"]
        assert scoring.cancel_release(STAFF, scheduled["release_id"])["state"] == "cancelled"
        with pytest.raises(Conflict):
            scoring.cancel_release(STAFF, scheduled["release_id"])
        with pytest.raises(Forbidden):
            scoring.list_releases(signed_actor({"subject": "cand-1", "role": "candidate"}))


def test_reading_a_candidates_results_is_one_query_on_an_index(databases):
    from sqlalchemy import event, inspect
    from sqlalchemy.orm import Session

    from credence_common.persistence.db import make_engine
    from services.scoring import usecases

    engine = make_engine(databases.create("scoring"))
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with Session(engine) as session:
        usecases.results_for_candidate(session, "cand-1")
    reading = list(statements)
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("exam_results")}
    engine.dispose()
    assert len(reading) == 1 and "WHERE exam_results.candidate_id" in reading[0]
    assert ("candidate_id",) in indexed
