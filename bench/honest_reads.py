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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import honest, result_reading
from bench.load import wrk_available
from bench.public_check import create_databases, create_vhost, delete_vhost, drop_databases
from deploy.platform import Platform, free_port, quiet_client_logging
from deploy.processes import PROCESSES

JWT_SECRET = "bench-reads-secret-0123456789abcdef0123456789abcdef"

QUERY = """
SELECT r.result_id, r.ticket_number, r.program_code, p.program_name, r.course_code, r.sitting, r.outcome,
       r.final_score, r.published_at
FROM exam_results r JOIN programs p ON p.program_code = r.program_code
WHERE r.candidate_id = %s
ORDER BY r.sitting, r.program_code
"""


def honest_results_app():
    """What the gateway and scoring do for one candidate's ``GET /api/v1/me/results``, as a plain WSGI app: one
    psycopg2 connection per worker thread (autocommit), one query."""
    import json
    import threading

    import psycopg2

    from credence_common.errors import CredenceError
    from gateway.auth import TokenService
    from services.scoring.domain import visible_status

    dsn = os.environ["BENCH_DB_DSN"]
    tokens = TokenService(os.environ["JWT_SECRET"])
    local = threading.local()

    def cursor():
        if getattr(local, "connection", None) is None or local.connection.closed:
            local.connection = psycopg2.connect(dsn)
            local.connection.autocommit = True
        return local.connection.cursor()

    def answer(start_response, status: str, body: dict):
        payload = json.dumps(body, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def app(environ, start_response):
        try:
            principal = tokens.principal_from_header(environ.get("HTTP_AUTHORIZATION"))
        except CredenceError as refused:
            return answer(start_response, f"{refused.http_status} Refused", refused.to_body())
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
        for result_id, ticket, program_code, program_name, course_code, sitting, outcome, score, published_at in rows:
            published = published_at is not None
            results.append({"result_id": result_id, "ticket_number": ticket, "program_code": program_code,
                            "program_name": program_name, "course_code": course_code or None, "sitting": sitting,
                            "status": visible_status(published, outcome), "final_score": score if published else None,
                            "published_at": published_at.isoformat().replace("+00:00", "Z") if published else None})
        return answer(start_response, "200 OK", {"results": results})

    return app


LUA = """\
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(%(seed)d + 7919 * id)
  statuses = {}
end
function request()
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]})
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("status %%d: %%d\\n", status, n)) end
end
"""


def get_random_tokens(url: str, tokens: Path, seconds: float, clients: int, workdir: Path,
                      seed: int = 18) -> honest.MixResult:
    """``clients`` keep-alive connections for ``seconds``, each request with a random candidate's token."""
    script = workdir / "reads.lua"
    script.write_text(LUA % {"tokens": tokens, "seed": seed}, encoding="utf-8")
    threads = max(1, min(2, clients // 16))
    completed = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:.0f}s", "--latency",
                                "--timeout", "10s", "-s", str(script), url],
                               capture_output=True, text=True, check=True)
    return honest.parse_mix(completed.stdout)


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
    parser.add_argument("--gateway", choices=["nameko", "asgi"], default="nameko",
                        help="the gateway's HTTP layer (GATEWAY_SERVER)")
    args = parser.parse_args()
    if not wrk_available():
        print("wrk is missing: `make bench-tools` installs it")
        return 2
    quiet_client_logging()
    vhost = create_vhost()
    workdir = Path(tempfile.mkdtemp(prefix="credence-bench-reads-"))
    env = dict(os.environ, CREDENCE_ENV="development", AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}", PUBLIC_RATE_LIMIT_PER_MINUTE="0",
               OUTBOX_POLL_INTERVAL="0.2", LOG_LEVEL="WARNING", GATEWAY_SERVER=args.gateway,
               JWT_SECRET=JWT_SECRET)
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    databases = create_databases("postgresql", workdir, env)
    platform = Platform(env, workdir / "log")
    try:
        platform.migrate()
        platform.start()
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
    finally:
        platform.stop()
        delete_vhost(vhost)
        drop_databases(databases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
