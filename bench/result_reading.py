"""Candidates reading their results just after release: the seeding and the load for ``bench.suite``.

The scoring database gets ``candidates`` candidates with four published course results each (a raw COPY: what
is measured is the reading, not how the results got there), and each candidate a signed access token, as
the gateway hands out at sign-in. The load is ``GET /api/v1/me/results`` from wrk, each request with the next
candidate's token, so that no answer can come from a cache of one candidate; the baseline is a one-process
WSGI app that checks the same token and runs the same query on the same database (``bench.baselines``).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from bench.load import LoadResult, parse_wrk

PROGRAM = "ZK-LAW"
COURSES = ("LAW101", "LAW102", "LAW103", "LAW104")
SITTING = "2026-10"


def candidate_id(n: int) -> str:
    return f"00000000-0000-4000-9000-{n:012d}"


def seed_results(db_uri: str, candidates: int, workdir: Path) -> None:
    """``candidates`` x four published results in scoring's ``exam_results``."""
    from bench.result_import import copy_lines

    now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())

    def lines():
        for n in range(candidates):
            for index, course in enumerate(COURSES):
                score = 40 + (n * 7 + index * 13) % 60
                yield (f"{uuid.uuid4()},8826{n:08d},{candidate_id(n)},{PROGRAM},{course},{SITTING},{score},"
                       f"{'passed' if score >= 60 else 'failed'},{now},{now}\n")

    copy_lines(db_uri, "COPY exam_results (result_id, ticket_number, candidate_id, program_code, course_code, "
                       "sitting, final_score, outcome, recorded_at, published_at) FROM STDIN WITH (FORMAT csv)",
               lines(), workdir / "published-results.csv")


def write_tokens(jwt_secret: str, candidates: int, path: Path) -> Path:
    from gateway.auth import TokenService

    issuer = TokenService(jwt_secret, lifetime_seconds=3600)
    path.write_text("".join(issuer.issue(candidate_id(n), "candidate")["access_token"] + "\n"
                            for n in range(candidates)))
    return path


LUA = """\
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local counter = 0
function setup(thread)
  thread:set("offset", math.random(#tokens))
end
function request()
  counter = counter + 1
  local token = tokens[(counter + (offset or 0)) %% #tokens + 1]
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""


def get_with_tokens(url: str, tokens: Path, seconds: float, clients: int, workdir: Path,
                    threads: int = 2) -> LoadResult:
    """``clients`` connections for ``seconds``, each request with the next token of the file."""
    script = workdir / "tokens.lua"
    script.write_text(LUA % {"tokens": tokens})
    completed = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:.0f}s", "--latency",
                                "--timeout", "10s", "-s", str(script), url],
                               capture_output=True, text=True, check=True)
    return parse_wrk(completed.stdout)
