"""The routes that forward to scoring: result files and releases, programs, evaluation, re-checks, corrections,
exemptions and the exam record, a candidate's results. Most routes only forward (``Rpc``, gateway/routing.py); the
handlers above the table do more (gateway/api.py assembles every service's table)."""

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
    ACTOR,
    ANY_SIGNED_IN,
    BODY,
    EXPERT,
    HISTORY,
    PUBLISHER,
    RECORDER,
    SUBJECT,
    SUPPORT,
    Accepted,
    Call,
    Param,
    Query,
    Route,
    Rpc,
)


def import_results(call: Call):
    import base64

    file_format = call.query.get("format", "csv")
    answer = call.rpc.call("scoring", "import_results", call.actor, {
        "file_format": file_format, "content_base64": base64.b64encode(call.raw_body).decode("ascii")})
    if answer.get("status") in ("queued", "processing"):  # a large file: imported in the background
        return Accepted(answer, f"/api/v1/result-imports/{answer['batch_id']}")
    return answer


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


def my_results(call: Call):
    # batched: rides with the other reads of the moment in one results_for_candidates round trip (the asgi binding
    # awaits the same on its loop, gateway/asgi.py NATIVE_HANDLERS). The principal, not a signed actor: the batch
    # of reads it rides in is signed once (ActorSigner.sign_batch)
    return call.rpc.candidate_results(call.principal, call.principal.subject)


ROUTES: tuple[Route, ...] = (
    Route(name="my_results", method="GET", path="/api/v1/me/results",
          summary="The candidate's exam results (scores hidden until release)",
          roles=("candidate",), response_model=ResultList, tag="scoring",
          links=(("request_score_review", "result_id", "/results/0/result_id"),),
          handler=my_results),
    Route(name="list_programs", method="GET", path="/api/v1/programs",
          summary="Exam programs with their rules and courses",
          roles=("public",) + ANY_SIGNED_IN, response_model=ProgramList, tag="scoring",
          handler=Rpc("scoring", "list_programs")),
    Route(name="import_results", method="POST", path="/api/v1/result-imports",
          summary="Import an exam centre's result file (body: the CSV or JSON Lines file; ?format=csv|jsonl); all "
                  "rows or none, idempotent. A file over IMPORT_INLINE_MAX_BYTES (256 KiB) is answered 202 with "
                  "status queued and Location: the batch's URL, where its progress and then its report appear",
          roles=("staff",), staff_roles=RECORDER, response_model=ImportReportView, raw_body=True,
          max_body_bytes=16 * 1024 * 1024, accepted_status=True, tag="scoring",
          links=(("import_report", "batch_id", "/batch_id"), ("import_errors_csv", "batch_id", "/batch_id")),
          handler=import_results),
    Route(name="import_report", method="GET", path="/api/v1/result-imports/<batch_id>",
          summary="An import batch with its row-error report (staff)",
          roles=("staff",), staff_roles=RECORDER, tag="scoring",
          handler=Rpc("scoring", "import_report", ACTOR, Param("batch_id"))),
    Route(name="list_releases", method="GET", path="/api/v1/releases",
          summary="Releases, newest first: scheduled, published, cancelled (staff)",
          roles=("staff",), staff_roles=PUBLISHER, response_model=ReleaseList, tag="scoring",
          links=(("cancel_release", "release_id", "/releases/0/release_id"),),
          handler=Rpc("scoring", "list_releases", ACTOR)),
    Route(name="cancel_release", method="POST", path="/api/v1/releases/<release_id>/cancellation",
          summary="Cancel a scheduled release before its time (staff)",
          roles=("staff",), staff_roles=PUBLISHER, response_model=ReleaseView, tag="scoring",
          handler=Rpc("scoring", "cancel_release", ACTOR, Param("release_id"))),
    Route(name="import_errors_csv", method="GET", path="/api/v1/result-imports/<batch_id>/errors.csv",
          summary="The row-error report of an import as a CSV file, to open next to the uploaded file (staff)",
          roles=("staff",), staff_roles=RECORDER, content_type="text/csv; charset=utf-8", tag="scoring",
          handler=import_errors_csv),
    Route(name="result_history", method="GET", path="/api/v1/results/<result_id>/history",
          summary="Every change to a result: who, when, before, after, why (staff)",
          roles=("staff",), staff_roles=HISTORY, tag="scoring",
          handler=Rpc("scoring", "result_history", ACTOR, Param("result_id"))),
    Route(name="evaluation_queue", method="GET", path="/api/v1/evaluations",
          summary="Composite results awaiting the experts (?program_code=&sitting=), with the formula's suggestion",
          roles=("staff",), staff_roles=EXPERT, response_model=EvaluationQueue, tag="scoring",
          links=(("evaluate_result", "result_id", "/items/0/result_id"),
                 ("decide_held_result", "result_id", "/items/0/result_id"),
                 ("result_history", "result_id", "/items/0/result_id")),
          handler=Rpc("scoring", "evaluation_queue", ACTOR, Query("program_code", ""), Query("sitting", ""))),
    Route(name="evaluate_result", method="POST", path="/api/v1/results/<result_id>/evaluations",
          summary="An expert signs a composite result passed or failed; two different experts must agree, neither of "
                  "them one who recorded it",
          roles=("staff",), staff_roles=EXPERT, request_model=EvaluateResult, tag="scoring",
          handler=Rpc("scoring", "evaluate_result", ACTOR, Param("result_id"), BODY)),
    Route(name="decide_held_result", method="POST", path="/api/v1/results/<result_id>/decision",
          summary="Settle a result the two experts disagree on (a third expert: neither of the two who signed, nor "
                  "one who recorded it)",
          roles=("staff",), staff_roles=EXPERT, request_model=DecideHeldResult, tag="scoring",
          handler=Rpc("scoring", "decide_held_result", ACTOR, Param("result_id"), BODY)),
    Route(name="request_score_review", method="POST", path="/api/v1/me/results/<result_id>/review",
          summary="Ask for a re-check (复查) of one released result, within the program's window",
          roles=("candidate",), request_model=RequestScoreReview, response_model=ScoreReviewView, success_status=201,
          tag="scoring",
          links=(("close_score_review", "review_id", "/review_id"),),
          handler=Rpc("scoring", "request_score_review", ACTOR, Param("result_id"), BODY)),
    Route(name="my_score_reviews", method="GET", path="/api/v1/me/score-reviews",
          summary="The candidate's re-check requests",
          roles=("candidate",), response_model=ScoreReviewList, tag="scoring",
          handler=Rpc("scoring", "score_reviews", ACTOR, SUBJECT)),
    Route(name="close_score_review", method="POST", path="/api/v1/score-reviews/<review_id>/closure",
          summary="Close a re-check as unchanged or corrected (a correction emits result_corrected; an expert who did "
                  "not record the result)",
          roles=("staff",), staff_roles=EXPERT, request_model=CloseScoreReview, response_model=ScoreReviewView,
          tag="scoring",
          handler=Rpc("scoring", "close_score_review", ACTOR, Param("review_id"), BODY)),
    Route(name="open_score_reviews", method="GET", path="/api/v1/score-reviews",
          summary="Open re-check requests, oldest first (staff)",
          roles=("staff",), staff_roles=EXPERT, response_model=ScoreReviewList, tag="scoring",
          links=(("close_score_review", "review_id", "/reviews/0/review_id"),
                 ("result_history", "result_id", "/reviews/0/result_id")),
          handler=Rpc("scoring", "open_score_reviews", ACTOR)),
    Route(name="correct_result", method="POST", path="/api/v1/results/<result_id>/correction",
          summary="Correct a result before its release, with a reason (staff; experts sign again)",
          roles=("staff",), staff_roles=RECORDER, request_model=CorrectResult, tag="scoring",
          handler=Rpc("scoring", "correct_result", ACTOR, Param("result_id"), BODY)),
    Route(name="grant_exemption", method="POST", path="/api/v1/exemptions",
          summary="Exempt a candidate from a course (免考; staff)",
          roles=("staff",), staff_roles=RECORDER, request_model=GrantExemption, response_model=CandidateRecord,
          success_status=201, tag="scoring",
          links=(("candidate_record", "candidate_id", "/candidate_id"),),
          handler=Rpc("scoring", "grant_exemption", ACTOR, BODY)),
    Route(name="my_record", method="GET", path="/api/v1/me/record",
          summary="The exam record (考籍): tickets, passed and exempted courses, violations, graduation",
          roles=("candidate",), response_model=CandidateRecord, tag="scoring",
          handler=Rpc("scoring", "candidate_record", ACTOR, SUBJECT)),
    Route(name="candidate_record", method="GET", path="/api/v1/candidates/<candidate_id>/record",
          summary="A candidate's exam record (staff)",
          roles=("staff",), staff_roles=SUPPORT, response_model=CandidateRecord, tag="scoring",
          handler=Rpc("scoring", "candidate_record", ACTOR, Param("candidate_id"))),
    Route(name="record_results", method="POST", path="/api/v1/exam-results",
          summary="Record a batch of exam results (all or none)",
          roles=("staff",), staff_roles=RECORDER, request_model=RecordResults, response_model=RecordResultsOutcome,
          tag="scoring",
          handler=Rpc("scoring", "record_results", ACTOR, BODY)),
    Route(name="publish_results", method="POST", path="/api/v1/exam-results/publication",
          summary="Release a sitting's results to candidates",
          roles=("staff",), staff_roles=PUBLISHER, request_model=PublishResults, response_model=PublishResultsOutcome,
          tag="scoring",
          links=(("cancel_release", "release_id", "/release_id"),),
          handler=Rpc("scoring", "publish_results", ACTOR, BODY)),
)
