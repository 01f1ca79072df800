"""Candidates reading their results against an honest baseline (issue #18, item 1): what a competent team would
deploy instead of the gateway -> RPC -> scoring path.

The baseline is gunicorn (gthread workers, HTTP/1.1 keep-alive) with psycopg2, doing per request what Credence
does for ``GET /api/v1/me/results``: it checks the candidate's signed access token with the gateway's own
``TokenService`` (the same secret, the same checks), refuses anyone but a candidate (403) and a bad token
(401), runs scoring's query for the candidate's results (``services/scoring/usecases.results_for_candidates``:
the results joined to their program, in the same order) and answers the same JSON (``ResultList``: an
unpublished result shows no score, ``scoring.domain.visible_status``). It runs with one worker process and with
one per core.

The load: ``--candidates`` candidates (10,000 by default) with four published course results each, seeded into
scoring's database by a raw COPY; wrk with keep-alive, each request with a random candidate's token, so no
answer can come from a cache of one candidate; 64 connections for throughput and p50/p99, one for the lone
request. Both systems read the same database. Run it with ``make bench-reads``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import honest, result_reading
from bench.load import wrk_available
from bench.public_check import bench_platform
from deploy.platform import quiet_client_logging
from deploy.processes import DEFAULT_GATEWAY_SERVER, GATEWAY_SERVERS

JWT_SECRET = "bench-reads-secret-0123456789abcdef0123456789abcdef"

QUERY = """
SELECT r.result_id, r.ticket_number, r.program_code, p.program_name, r.course_code, r.sitting, r.outcome,
       r.final_score, r.published_at, p.review_window_days
FROM exam_results r JOIN programs p ON p.program_code = r.program_code
WHERE r.candidate_id = %s
ORDER BY r.sitting, r.program_code
"""


def honest_results_app():
    """What the gateway and scoring do for one candidate's ``GET /api/v1/me/results``, as a plain WSGI app: one
    psycopg2 connection per worker thread (autocommit), one query."""
    from bench.baselines import json_answer as answer
    from bench.baselines import thread_cursor
    from credence_common.contracts.errors import CredenceError
    from gateway.auth import TokenService
    from gateway.statuses import http_status
    from services.scoring.domain import review_window_ends_at, visible_status

    cursor = thread_cursor(os.environ["BENCH_DB_DSN"])
    tokens = TokenService(os.environ["JWT_SECRET"])

    def app(environ, start_response):
        try:
            principal = tokens.principal_from_header(environ.get("HTTP_AUTHORIZATION"))
        except CredenceError as refused:
            return answer(start_response, f"{http_status(refused)} Refused", refused.to_body())
        if principal.is_public:
            return answer(start_response, "401 Unauthorized", {"error": {"code": "authentication_required",
                                                                         "message": "Sign in."}})
        if principal.role != "candidate":
            return answer(start_response, "403 Forbidden", {"error": {"code": "forbidden",
                                                                      "message": "Candidates only."}})
        with cursor() as cur:
            cur.execute(QUERY, (principal.subject,))
            rows = cur.fetchall()
        results = []
        for (result_id, ticket, program_code, program_name, course_code, sitting, outcome, score, published_at,
             window_days) in rows:
            published = published_at is not None
            window_ends = review_window_ends_at(published_at, window_days)
            results.append({"result_id": result_id, "ticket_number": ticket, "program_code": program_code,
                            "program_name": program_name, "course_code": course_code or None, "sitting": sitting,
                            "status": visible_status(published, outcome), "final_score": score if published else None,
                            "published_at": published_at.isoformat().replace("+00:00", "Z") if published else None,
                            "review_window_ends_at": window_ends.isoformat().replace("+00:00", "Z") if published
                            else None})
        return answer(start_response, "200 OK", {"results": results})

    return app


def get_random_tokens(url: str, tokens: Path, seconds: float, clients: int, workdir: Path,
                      seed: int = 18) -> honest.MixResult:
    """``clients`` keep-alive connections for ``seconds``, each request with a random candidate's token."""
    return honest.random_lines_load(url, tokens, honest.GET_WITH_TOKEN, seconds, clients, workdir, seed)


def wait_for_answer(url: str, token: str, seconds: float = 30) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load")
    parser.add_argument("--clients", type=int, default=64, help="keep-alive connections for the loaded figures")
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn gthread threads per worker")
    parser.add_argument("--gateway", choices=GATEWAY_SERVERS, default=DEFAULT_GATEWAY_SERVER,
                        help="the gateway's HTTP layer (GATEWAY_SERVER)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="then this many more paired rounds (Credence, gunicorn 1 worker, back to back) and the "
                             "median of their ratios: this host's speed drifts within minutes")
    args = parser.parse_args()
    if not wrk_available():
        print("wrk is missing: `make bench-tools` installs it")
        return 2
    quiet_client_logging()
    with bench_platform(prefix="credence-bench-reads-", GATEWAY_SERVER=args.gateway, JWT_SECRET=JWT_SECRET) as (
            platform, env, workdir):
        db_uri = env["SCORING_DB_URI"]
        started = time.perf_counter()
        result_reading.seed_results(db_uri, args.candidates, workdir)
        tokens = result_reading.write_tokens(JWT_SECRET, args.candidates, workdir / "tokens.txt")
        first_token = tokens.read_text().split("\n", 1)[0]
        print(f"Result reading against an honest baseline: {args.candidates:,} candidates x "
              f"{len(result_reading.COURSES)} published results seeded in {time.perf_counter() - started:.1f} s; "
              f"each request a random candidate's token")

        def measure(label: str, url: str) -> honest.SystemResult:
            wait_for_answer(url, first_token)
            get_random_tokens(url, tokens, 2, args.clients, workdir)  # warm-up: connections, caches
            loaded = get_random_tokens(url, tokens, args.seconds, args.clients, workdir)
            lone = get_random_tokens(url, tokens, args.seconds, 1, workdir)
            print(f"  {label:<60} {loaded.requests_per_second:>7.0f} req/s  p50 {loaded.p50_ms:6.1f}  "
                  f"p99 {loaded.p99_ms:6.1f}  lone p50 {lone.p50_ms:5.2f} ms  [{loaded.answers()}]", flush=True)
            return honest.SystemResult(label, loaded, lone)

        credence = measure(f"Credence: {args.gateway} gateway -> RPC -> scoring",
                           platform.gateway_url + "/api/v1/me/results")
        baselines = []
        for workers in (1, os.cpu_count() or 2):
            with honest.gunicorn("bench.honest_reads:honest_results_app()", dict(env, BENCH_DB_DSN=db_uri), workers,
                                 args.threads) as url:
                baselines.append(measure(honest.baseline_label(workers, args.threads), url))
        print(f"\nResult reading against an honest baseline ({args.seconds:.0f} s per load, {args.clients} wrk "
              f"connections with keep-alive and 1 for the lone request, {args.candidates:,} candidates):\n")
        print(honest.honest_table(credence, baselines, args.clients))
        print(f"\nratio Credence / gunicorn 1 worker ({args.clients} conns): "
              f"{credence.loaded.requests_per_second / baselines[0].loaded.requests_per_second:.2f}   "
              f"lone-request p50 Credence / gunicorn 1 worker: {credence.lone.p50_ms / baselines[0].lone.p50_ms:.2f}")
        if args.rounds:
            def one_worker() -> honest.SystemResult:
                with honest.gunicorn("bench.honest_reads:honest_results_app()", dict(env, BENCH_DB_DSN=db_uri), 1,
                                     args.threads) as url:
                    return measure(honest.baseline_label(1, args.threads), url)

            print(f"\nPaired rounds, Credence ({args.gateway} gateway) then gunicorn 1 worker:")
            honest.paired_rounds(args.rounds, lambda: measure(f"Credence: {args.gateway} gateway -> RPC -> scoring",
                                                              platform.gateway_url + "/api/v1/me/results"), one_worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
