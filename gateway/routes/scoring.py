"""The routes that forward to scoring: result files and releases, programs, evaluation, re-checks, corrections,
exemptions and the exam record, a candidate's results. Each handler only forwards (gateway/api.py assembles every
service's table)."""

from __future__ import annotations

from credence_common.contracts.scoring import (
    CandidateRecord,
    CloseScoreReview,
    CorrectResult,
    DecideHeldResult,
    EvaluateResult,
    EvaluationQueue,
    GrantExemption,
    ImportReportView,
    ProgramList,
    PublishResults,
    PublishResultsOutcome,
    RecordResults,
    RecordResultsOutcome,
    ReleaseList,
    ReleaseView,
    RequestScoreReview,
    ResultList,
    ScoreReviewList,
    ScoreReviewView,
)
from gateway.routing import (
    ANY_SIGNED_IN,
    EXPERT,
    HISTORY,
    PUBLISHER,
    RECORDER,
    SUPPORT,
    Accepted,
    Call,
    Route,
    dump,
)


def import_results(call: Call):
    import base64

    file_format = call.query.get("format", "csv")
    answer = call.rpc.call("scoring", "import_results", call.actor, {
        "file_format": file_format, "content_base64": base64.b64encode(call.raw_body).decode("ascii")})
    if answer.get("status") in ("queued", "processing"):  # a large file: imported in the background
        return Accepted(answer, f"/api/v1/result-imports/{answer['batch_id']}")
    return answer


def import_report(call: Call):
    return call.rpc.call("scoring", "import_report", call.actor, call.params["batch_id"])


def list_releases(call: Call):
    return call.rpc.call("scoring", "list_releases", call.actor)


def cancel_release(call: Call):
    return call.rpc.call("scoring", "cancel_release", call.actor, call.params["release_id"])


def import_errors_csv(call: Call) -> str:
    import csv
    import io

    report = call.rpc.call("scoring", "import_report", call.actor, call.params["batch_id"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "field", "message"])
    for error in report["errors"]:
        writer.writerow([error["line"], error["field"] or "", error["message"]])
    return out.getvalue()


def result_history(call: Call):
    return call.rpc.call("scoring", "result_history", call.actor, call.params["result_id"])


def list_programs(call: Call):
    return call.rpc.call("scoring", "list_programs")


def evaluation_queue(call: Call):
    return call.rpc.call("scoring", "evaluation_queue", call.actor, call.query.get("program_code", ""),
                         call.query.get("sitting", ""))


def evaluate_result(call: Call):
    return call.rpc.call("scoring", "evaluate_result", call.actor, call.params["result_id"], dump(call.body))


def decide_held_result(call: Call):
    return call.rpc.call("scoring", "decide_held_result", call.actor, call.params["result_id"], dump(call.body))


def request_score_review(call: Call):
    return call.rpc.call("scoring", "request_score_review", call.actor, call.params["result_id"], dump(call.body))


def my_score_reviews(call: Call):
    return call.rpc.call("scoring", "score_reviews", call.actor, call.principal.subject)


def close_score_review(call: Call):
    return call.rpc.call("scoring", "close_score_review", call.actor, call.params["review_id"], dump(call.body))


def open_score_reviews(call: Call):
    return call.rpc.call("scoring", "open_score_reviews", call.actor)


def correct_result(call: Call):
    return call.rpc.call("scoring", "correct_result", call.actor, call.params["result_id"], dump(call.body))


def grant_exemption(call: Call):
    return call.rpc.call("scoring", "grant_exemption", call.actor, dump(call.body))


def my_record(call: Call):
    return call.rpc.call("scoring", "candidate_record", call.actor, call.principal.subject)


def candidate_record(call: Call):
    return call.rpc.call("scoring", "candidate_record", call.actor, call.params["candidate_id"])


def my_results(call: Call):
    # the principal, not a signed actor: the batch of reads it rides in is signed once (ActorSigner.sign_batch)
    return call.rpc.candidate_results(call.principal, call.principal.subject)


def record_results(call: Call):
    return call.rpc.call("scoring", "record_results", call.actor, dump(call.body))


def publish_results(call: Call):
    return call.rpc.call("scoring", "publish_results", call.actor, dump(call.body))


ROUTES: tuple[Route, ...] = (
    Route("my_results", "GET", "/api/v1/me/results", "The candidate's exam results (scores hidden until release)",
          ("candidate",), my_results, None, ResultList, tag="scoring"),
    Route("list_programs", "GET", "/api/v1/programs", "Exam programs with their rules and courses",
          ("public",) + ANY_SIGNED_IN, list_programs, None, ProgramList, tag="scoring"),
    Route("import_results", "POST", "/api/v1/result-imports",
          "Import an exam centre's result file (body: the CSV or JSON Lines file; ?format=csv|jsonl); all rows "
          "or none, idempotent. A file over IMPORT_INLINE_MAX_BYTES (256 KiB) is answered 202 with status queued "
          "and Location: the batch's URL, where its progress and then its report appear", ("staff",),
          import_results, None, ImportReportView, raw_body=True, max_body_bytes=16 * 1024 * 1024,
          accepted_status=True, staff_roles=RECORDER, tag="scoring"),
    Route("import_report", "GET", "/api/v1/result-imports/<batch_id>",
          "An import batch with its row-error report (staff)", ("staff",), import_report, None, None,
          staff_roles=RECORDER, tag="scoring"),
    Route("list_releases", "GET", "/api/v1/releases", "Releases, newest first: scheduled, published, cancelled "
          "(staff)", ("staff",), list_releases, None, ReleaseList, staff_roles=PUBLISHER, tag="scoring"),
    Route("cancel_release", "POST", "/api/v1/releases/<release_id>/cancellation",
          "Cancel a scheduled release before its time (staff)", ("staff",), cancel_release, None, ReleaseView,
          staff_roles=PUBLISHER, tag="scoring"),
    Route("import_errors_csv", "GET", "/api/v1/result-imports/<batch_id>/errors.csv",
          "The row-error report of an import as a CSV file, to open next to the uploaded file (staff)", ("staff",),
          import_errors_csv, None, None, content_type="text/csv; charset=utf-8", staff_roles=RECORDER, tag="scoring"),
    Route("result_history", "GET", "/api/v1/results/<result_id>/history",
          "Every change to a result: who, when, before, after, why (staff)", ("staff",), result_history, None,
          None, staff_roles=HISTORY, tag="scoring"),
    Route("evaluation_queue", "GET", "/api/v1/evaluations",
          "Composite results awaiting the experts (?program_code=&sitting=), with the formula's suggestion",
          ("staff",), evaluation_queue, None, EvaluationQueue, staff_roles=EXPERT, tag="scoring"),
    Route("evaluate_result", "POST", "/api/v1/results/<result_id>/evaluations",
          "An expert signs a composite result passed or failed; two different experts must agree, neither of them "
          "one who recorded it", ("staff",), evaluate_result, EvaluateResult, None, staff_roles=EXPERT, tag="scoring"),
    Route("decide_held_result", "POST", "/api/v1/results/<result_id>/decision",
          "Settle a result the two experts disagree on (a third expert: neither of the two who signed, nor one who "
          "recorded it)", ("staff",), decide_held_result,
          DecideHeldResult, None, staff_roles=EXPERT, tag="scoring"),
    Route("request_score_review", "POST", "/api/v1/me/results/<result_id>/review",
          "Ask for a re-check (复查) of one released result, within the program's window", ("candidate",),
          request_score_review, RequestScoreReview, ScoreReviewView, 201, tag="scoring"),
    Route("my_score_reviews", "GET", "/api/v1/me/score-reviews", "The candidate's re-check requests",
          ("candidate",), my_score_reviews, None, ScoreReviewList, tag="scoring"),
    Route("close_score_review", "POST", "/api/v1/score-reviews/<review_id>/closure",
          "Close a re-check as unchanged or corrected (a correction emits result_corrected; an expert who did not "
          "record the result)", ("staff",),
          close_score_review, CloseScoreReview, ScoreReviewView, staff_roles=EXPERT, tag="scoring"),
    Route("open_score_reviews", "GET", "/api/v1/score-reviews", "Open re-check requests, oldest first (staff)",
          ("staff",), open_score_reviews, None, ScoreReviewList, staff_roles=EXPERT, tag="scoring"),
    Route("correct_result", "POST", "/api/v1/results/<result_id>/correction",
          "Correct a result before its release, with a reason (staff; experts sign again)", ("staff",),
          correct_result, CorrectResult, None, staff_roles=RECORDER, tag="scoring"),
    Route("grant_exemption", "POST", "/api/v1/exemptions", "Exempt a candidate from a course (免考; staff)",
          ("staff",), grant_exemption, GrantExemption, CandidateRecord, 201, staff_roles=RECORDER, tag="scoring"),
    Route("my_record", "GET", "/api/v1/me/record",
          "The exam record (考籍): tickets, passed and exempted courses, violations, graduation", ("candidate",),
          my_record, None, CandidateRecord, tag="scoring"),
    Route("candidate_record", "GET", "/api/v1/candidates/<candidate_id>/record", "A candidate's exam record (staff)",
          ("staff",), candidate_record, None, CandidateRecord, staff_roles=SUPPORT, tag="scoring"),
    Route("record_results", "POST", "/api/v1/exam-results", "Record a batch of exam results (all or none)",
          ("staff",), record_results, RecordResults, RecordResultsOutcome, staff_roles=RECORDER, tag="scoring"),
    Route("publish_results", "POST", "/api/v1/exam-results/publication",
          "Release a sitting's results to candidates", ("staff",), publish_results, PublishResults,
          PublishResultsOutcome, staff_roles=PUBLISHER, tag="scoring"),
)
