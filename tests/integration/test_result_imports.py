"""Bulk result import, programs as data and the audit trail, on a real database and broker."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import InvalidInput
from credence_common.contracts.events import CandidateConfirmedV1
from services.scoring.cli import app
from services.scoring.models import ImportBatch
from services.scoring.service import ScoringService
from tests.integration.conftest import publish_event, query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_scoring import sign_off

STAFF = signed_actor({"subject": "staff:clerk", "role": "staff"})
TICKETS = ["112600000011", "112600000012", "112600000013"]
HEADER = "ticket_number,program_code,course_code,sitting,score\n"


def roster(config) -> None:
    for n, ticket in enumerate(TICKETS):
        publish_event(config["AMQP_URI"], CandidateConfirmedV1(
            candidate_id=f"cand-{n}", ticket_number=ticket, full_name="王小明",
            resident_id_number_masked="110105********002X", exam_region="11", method="online",
            confirmed_at=utcnow()))
    wait_for(lambda: query(config["DB_URI"], "select count(*) from roster") == [(len(TICKETS),)], what="roster")


def upload(scoring, text: str, file_format: str = "csv") -> dict:
    return scoring.import_results(STAFF, {"file_format": file_format,
                                          "content_base64": base64.b64encode(text.encode()).decode()})


def test_course_results_import_all_or_nothing_and_idempotently(start_service):
    container, config = start_service(ScoringService)
    roster(config)
    db = config["DB_URI"]
    first = HEADER + "".join(f"{t},ZK-LAW,00015,2026-04,{70 + n}\n" for n, t in enumerate(TICKETS))
    with rpc_proxy("scoring", config) as scoring:
        report = upload(scoring, first)
        assert report["status"] == "imported" and report["recorded"] == 3 and report["row_count"] == 3
        again = upload(scoring, first)
        assert again["status"] == "already_imported" and again["batch_id"] == report["batch_id"]
        overlapping = HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,70\n{TICKETS[0]},ZK-LAW,00227,2026-04,55\n"
        assert upload(scoring, overlapping) | {"batch_id": None} == {
            "batch_id": None, "status": "imported", "row_count": 2, "recorded": 1, "unchanged": 1, "error_count": 0}

        bad = (HEADER + f"{TICKETS[1]},ZK-LAW,00230,2026-04,66\n"      # fine, but the batch fails
               f"{TICKETS[0]},ZK-LAW,00015,2026-04,99\n"               # disagrees with the recorded 70
               f"119999999999,ZK-LAW,00015,2026-04,50\n"               # unknown ticket
               f"{TICKETS[2]},ZK-LAW,99999,2026-04,50\n"               # unknown course
               f"{TICKETS[2]},ZK-LAW,00233,2026-04,101\n"              # out of range
               f"{TICKETS[2]},ZK-LAW,00233,2026-04,60\n{TICKETS[2]},ZK-LAW,00233,2026-04,61\n")  # duplicate rows
        with pytest.raises(InvalidInput) as rejected:
            upload(scoring, bad)
        assert rejected.value.code == "import_rejected"
        lines = {(d["field"].split(":")[0], d["message"].split(";")[0]) for d in rejected.value.details}
        assert {line for line, _ in lines} == {"line 3", "line 4", "line 5", "line 6", "line 8"}
        batch_id = rejected.value.message.split("batch ")[1].split(";")[0]
        saved = scoring.import_report(STAFF, batch_id)
        assert saved["status"] == "rejected" and saved["error_count"] == 5
        assert {e["line"] for e in saved["errors"]} == {3, 4, 5, 6, 8}
    assert query(db, "select count(*) from exam_results") == [(4,)]  # nothing from the rejected batch
    assert query(db, f"select final_score from exam_results where ticket_number = '{TICKETS[0]}' "
                     "and course_code = '00015'") == [(70,)]


def test_a_name_column_is_checked_against_the_roster_and_a_mismatch_rejects_the_file(start_service, databases):
    # exam centres' files carry 姓名 (#19 item 6): the roster's names are sealed, so on PostgreSQL such a file
    # takes the row-by-row path, which compares them
    import io

    from services.scoring.adapters import fast_import

    container, config = start_service(ScoringService)
    roster(config)  # every ticket's holder is 王小明
    with pytest.raises(fast_import.NotForFastPath):
        fast_import.header_columns(io.BytesIO(b"ticket_number,program_code,sitting,full_name\n"), "utf-8")
    named = "ticket_number,姓名,program_code,course_code,sitting,score\n"
    with rpc_proxy("scoring", config) as scoring:
        wrong = named + f"{TICKETS[0]},王 小明,ZK-LAW,00015,2026-04,70\n{TICKETS[1]},李四,ZK-LAW,00015,2026-04,71\n"
        with pytest.raises(InvalidInput) as rejected:
            upload(scoring, wrong)
        assert rejected.value.code == "import_rejected"
        assert rejected.value.details == [{"field": "line 3: full_name",
                                           "message": "does not match the name registered for this ticket number"}]
        assert "李四" not in json.dumps(scoring.import_report(STAFF, rejected.value.fields["batch_id"]),
                                      ensure_ascii=False)  # the report names the line, not the name it read
        assert query(config["DB_URI"], "select count(*) from exam_results") == [(0,)]
        right = named + f"{TICKETS[0]},王 小明,ZK-LAW,00015,2026-04,70\n{TICKETS[1]},王小明,ZK-LAW,00015,2026-04,71\n"
        report = upload(scoring, right)
        assert (report["status"], report["recorded"]) == ("imported", 2)
    assert sorted(query(config["DB_URI"], "select final_score from exam_results")) == [(70,), (71,)]


def test_composite_results_follow_the_programs_formula(start_service, event_spy):
    container, config = start_service(ScoringService)
    roster(config)
    spy = event_spy("scoring", "credence.scoring.candidate_qualified.v1")
    rows = [
        {"ticket_number": TICKETS[0], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
         "machine_exam_score": 80, "drill_score": 70},                                   # 77 passed
        {"ticket_number": TICKETS[1], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
         "machine_exam_score": 95, "drill_score": 95, "homework_completion": "incomplete"},  # 95 but failed
        {"ticket_number": TICKETS[2], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11",
         "machine_exam_score": 70, "drill_score": 60, "violation": "deduction"},          # 67 - 10 = 57 failed
    ]
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, "\n".join(json.dumps(r) for r in rows) + "\n", "jsonl")
        assert sorted(query(config["DB_URI"], "select ticket_number, final_score from exam_results")) == [
            (TICKETS[0], 77), (TICKETS[1], 95), (TICKETS[2], 57)]
        before = scoring.results_for_candidate(STAFF, "cand-0")["results"]
        assert before[0]["status"] == "evaluating" and before[0]["final_score"] is None
        queue = scoring.evaluation_queue(STAFF, "PSY-COUNSELLOR", "2026-11")["items"]
        assert sorted(i["suggested_outcome"] for i in queue) == ["failed", "failed", "passed"]
        sign_off(scoring)
        outcome = scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        assert (outcome["passed"], outcome["failed"]) == (1, 2)
        programs = scoring.list_programs()["programs"]
        psy = next(p for p in programs if p["program_code"] == "PSY-COUNSELLOR")
        assert "70% × machine exam" in psy["rules"] and "homework" in psy["rules"]
    qualified = spy.collect(1)
    assert [e["data"]["candidate_id"] for e in qualified] == ["cand-0"] and spy.drain(config["DB_URI"]) == []


def test_passing_every_required_course_qualifies_once(start_service, event_spy):
    container, config = start_service(ScoringService)
    roster(config)
    spy = event_spy("scoring", "credence.scoring.candidate_qualified.v1")
    ticket = TICKETS[0]
    april = HEADER + "".join(f"{ticket},ZK-LAW,{c},2026-04,{s}\n"
                             for c, s in (("00015", 61), ("00227", 75), ("00230", 40), ("00249", 80)))
    october = HEADER + f"{ticket},ZK-LAW,00230,2026-10,64\n{ticket},ZK-LAW,00233,2026-10,30\n"
    with rpc_proxy("scoring", config) as scoring:
        upload(scoring, april)
        scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-04"})
        assert spy.drain(config["DB_URI"]) == []  # 00230 failed: not yet complete
        upload(scoring, october)  # the retake passes; the optional 00233 fails and does not matter
        scoring.publish_results(STAFF, {"program_code": "ZK-LAW", "sitting": "2026-10"})
    graduation = spy.collect(1)
    assert graduation[0]["data"]["program_code"] == "ZK-LAW" and spy.drain(config["DB_URI"]) == []


def test_every_change_to_a_result_is_in_its_history(start_service):
    container, config = start_service(ScoringService)
    roster(config)
    line = {"ticket_number": TICKETS[0], "program_code": "PSY-COUNSELLOR", "sitting": "2026-11", "final_score": 58}
    with rpc_proxy("scoring", config) as scoring:
        scoring.record_results(STAFF, {"results": [line]})
        scoring.record_results(signed_actor({"subject": "staff:second", "role": "staff"}),
                               {"results": [dict(line, final_score=61)]})
        sign_off(scoring)
        scoring.publish_results(STAFF, {"program_code": "PSY-COUNSELLOR", "sitting": "2026-11"})
        result_id = query(config["DB_URI"], "select result_id from exam_results")[0][0]
        history = scoring.result_history(STAFF, result_id)["history"]
    assert [(h["action"], h["actor"]) for h in history] == [
        ("recorded", "staff:clerk"), ("corrected", "staff:second"), ("evaluated", "staff:expert2"),
        ("evaluated", "staff:expert3"), ("published", "staff:clerk")]
    assert history[1]["before"] == {"final_score": 58} and history[1]["after"] == {"final_score": 61}


def test_the_cli_streams_a_file_into_the_database(databases, tmp_path, start_service):
    container, config = start_service(ScoringService)
    roster(config)
    results = tmp_path / "centre-11.csv"
    results.write_text(HEADER + "".join(f"{t},ZK-LAW,00015,2026-04,{60 + n}\n" for n, t in enumerate(TICKETS)))
    settings = tmp_path / "scoring.yml"
    settings.write_text(yaml.safe_dump({"DB_URI": config["DB_URI"]}))
    runner = CliRunner()
    outcome = runner.invoke(app, ["import-results", str(results), "--config", str(settings), "--actor", "centre-11"])
    assert outcome.exit_code == 0, outcome.output
    assert "imported: 3 rows, 3 recorded" in outcome.output
    # the importer is a staff account, so separation of duties knows it (it may not sign these results off)
    assert query(config["DB_URI"], "select created_by from import_batches") == [("staff:centre-11",)]
    nameless = runner.invoke(app, ["import-results", str(results), "--config", str(settings)])
    assert nameless.exit_code == 2  # who imports is required
    broken = tmp_path / "broken.csv"
    broken.write_text(HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,abc\n")
    refused = runner.invoke(app, ["import-results", str(broken), "--config", str(settings), "--staff", "clerk"])
    assert refused.exit_code == 1 and "line 2" in refused.output
    assert query(config["DB_URI"], "select count(*) from exam_results") == [(3,)]


def test_postgresql_csv_files_take_the_copy_fast_path(start_service, databases):
    import io

    from sqlalchemy.orm import Session

    from credence_common.persistence.db import make_engine
    from services.scoring.adapters import fast_import

    if databases.backend != "postgresql":
        pytest.skip("the COPY fast path exists only on PostgreSQL")
    container, config = start_service(ScoringService)
    roster(config)
    body = (HEADER + "".join(f"{t},ZK-LAW,00015,2026-04,{50 + n}\n\n" for n, t in enumerate(TICKETS))).encode()
    engine = make_engine(config["DB_URI"])
    report = fast_import.new_report()
    with Session(engine) as session, session.begin():
        fast_import.stage_and_check(session.connection(), io.BytesIO(body), "utf-8", report)
    engine.dispose()
    assert (report.row_count, report.recorded, report.error_count) == (3, 3, 0)
    assert sorted(query(config["DB_URI"], "select final_score from exam_results")) == [(50,), (51,), (52,)]
    broken = fast_import.new_report()
    engine = make_engine(config["DB_URI"])
    with Session(engine) as session, session.begin():
        fast_import.stage_and_check(session.connection(), io.BytesIO(
            (HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,51\n\n{TICKETS[1]},ZK-LAW,00015,2026-04,x\n").encode()),
            "utf-8", broken)
        session.rollback()
    engine.dispose()
    assert [(e["line"], e["field"]) for e in broken.errors] == [(2, "score"), (4, "score")]


def fast_path(db_uri: str, body: str):
    import io

    from sqlalchemy.orm import Session

    from credence_common.persistence.db import make_engine
    from services.scoring.adapters import fast_import

    report = fast_import.new_report()
    engine = make_engine(db_uri)
    try:
        with Session(engine) as session, session.begin():
            fast_import.stage_and_check(session.connection(), io.BytesIO(body.encode()), "utf-8", report)
            if report.error_count:
                session.rollback()
    finally:
        engine.dispose()
    return report


def test_the_fast_paths_repeats_and_conflicts_are_judged_as_the_row_by_row_paths(start_service, databases):
    # every row passes its own checks, so the plain INSERT runs first; the unique key catches the repeat or the
    # recorded result, and the full checks decide as before
    if databases.backend != "postgresql":
        pytest.skip("the COPY fast path exists only on PostgreSQL")
    container, config = start_service(ScoringService)
    roster(config)
    db = config["DB_URI"]
    first = fast_path(db, HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,70\n{TICKETS[1]},ZK-LAW,00015,2026-04,71\n")
    assert (first.row_count, first.recorded, first.unchanged, first.error_count) == (2, 2, 0, 0)
    repeated = fast_path(db, HEADER + f"{TICKETS[2]},ZK-LAW,00015,2026-04,72\n" * 2
                         + f"{TICKETS[0]},ZK-LAW,00015,2026-04,70\n")  # a repeated row, a recorded one
    assert (repeated.row_count, repeated.recorded, repeated.unchanged, repeated.error_count) == (3, 1, 2, 0)
    conflicting = fast_path(db, HEADER + f"{TICKETS[1]},ZK-LAW,00227,2026-04,60\n"
                            f"{TICKETS[1]},ZK-LAW,00015,2026-04,90\n")  # disagrees with the recorded 71
    assert [(e["line"], e["field"]) for e in conflicting.errors] == [(3, "score")]
    assert "recorded result" in conflicting.errors[0]["message"]
    assert sorted(query(db, "select ticket_number, course_code, final_score from exam_results")) == [
        (TICKETS[0], "00015", 70), (TICKETS[1], "00015", 71), (TICKETS[2], "00015", 72)]


def test_a_file_too_large_for_the_request_is_imported_in_the_background(start_service):
    """Issue #19 item 6: above IMPORT_INLINE_MAX_BYTES the upload is accepted at once (status queued), kept in the
    same transaction, imported by the timer and followed at its batch id: an imported file's report, a rejected
    one's row errors, the same file twice is one upload, and a file imported before is answered at once. The
    stored file is emptied once imported (it holds names and ticket numbers)."""
    from sqlalchemy.orm import Session

    from credence_common.persistence.db import make_engine
    from services.scoring.usecases import imports

    container, config = start_service(ScoringService, IMPORT_INLINE_MAX_BYTES=64)
    roster(config)
    db = config["DB_URI"]
    good = HEADER + "".join(f"{ticket},ZK-LAW,00015,2026-04,{60 + n}\n" for n, ticket in enumerate(TICKETS))
    bad = HEADER + f"{TICKETS[0]},ZK-LAW,00015,2026-04,101\n999999999999,ZK-LAW,00015,2026-04,70\n"
    with rpc_proxy("scoring", config) as scoring:
        accepted = upload(scoring, good)
        assert accepted["status"] == "queued" and accepted["batch_id"]
        done = wait_for(lambda: (lambda r: r if r["status"] == "imported" else None)(
            scoring.import_report(STAFF, accepted["batch_id"])), what="the background import")
        assert (done["batch_id"], done["row_count"], done["recorded"]) == (accepted["batch_id"], 3, 3)
        assert upload(scoring, good)["status"] == "already_imported"  # answered at once, nothing queued
        rejected = upload(scoring, bad)
        report = wait_for(lambda: (lambda r: r if r["status"] == "rejected" else None)(
            scoring.import_report(STAFF, rejected["batch_id"])), what="the background rejection")
        assert report["error_count"] == 2 and {e["line"] for e in report["errors"]} == {2, 3}
        with pytest.raises(InvalidInput):  # refused before anything is queued
            scoring.import_results(STAFF, {"file_format": "xlsx", "content_base64": base64.b64encode(
                good.encode() * 2).decode()})
    assert query(db, "select count(*) from exam_results") == [(3,)]
    assert query(db, "select status, content_encrypted from queued_imports order by created_at") == [
        ("done", None), ("done", None)]

    # the same file sent twice while it waits is one upload; a process that died while importing leaves it to
    # be claimed again once stale, and the import (one transaction) starts from nothing
    container.stop()
    engine = make_engine(db)
    try:
        again = HEADER + f"{TICKETS[1]},ZK-LAW,00227,2026-04,77\n"
        with Session(engine) as session, session.begin():
            first = imports.accept(session, again.encode(), "csv", "staff:clerk")
        with Session(engine) as session, session.begin():
            assert imports.accept(session, again.encode(), "csv", "staff:clerk")["batch_id"] == first["batch_id"]
        assert imports.claim(engine) == first["batch_id"]  # then the process dies
        assert imports.claim(engine) is None  # not stale yet: nobody else takes it
        with engine.begin() as connection:
            connection.execute(text("update queued_imports set started_at = :t where batch_id = :b"),
                               {"t": utcnow() - imports.STALE_AFTER * 2, "b": first["batch_id"]})
        assert imports.run_one(engine) == first["batch_id"]
        with Session(engine) as session:
            assert session.get(ImportBatch, first["batch_id"]).status == "imported"
        # a file that took its process down every time it was tried is failed, not tried for ever
        poison = HEADER + f"{TICKETS[2]},ZK-LAW,00230,2026-04,91\n"
        with Session(engine) as session, session.begin():
            doomed = imports.accept(session, poison.encode(), "csv", "staff:clerk")
        with engine.begin() as connection:
            connection.execute(text("update queued_imports set status = 'processing', attempts = :n, started_at = :t "
                                    "where batch_id = :b"), {"n": imports.MAX_ATTEMPTS,
                                                             "t": utcnow() - imports.STALE_AFTER * 2,
                                                             "b": doomed["batch_id"]})
        assert imports.claim(engine) is None
        assert query(db, "select status, content_encrypted from queued_imports where batch_id = :b",
                     b=doomed["batch_id"]) == [("failed", None)]
    finally:
        engine.dispose()
