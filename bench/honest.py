"""The public check against an honest baseline (issue #18): what a competent team would deploy instead.

The baseline is gunicorn (gthread workers, HTTP/1.1 keep-alive) with psycopg2, doing per request what
verification does for one check: the look-up by number and name key, the count of the number's recent failed
checks (and whether this caller is among them) that ``CHECKS_PER_NUMBER_PER_MINUTE`` needs, the same
``check_log`` row, the same answer codes (``bench.baselines.honest_app``). It runs with one worker process and
with one per core.

The load is wrk with keep-alive, each request a random (holder name, certificate number) pair from a mix over
``certificates`` seeded certificates (``check_mix``): mostly right pairs, some wrong names, some numbers
nobody holds (valid check digits, never issued). The per-address limit is off (the gateway's
``PUBLIC_RATE_LIMIT_PER_MINUTE`` set high), the per-number limit as in production, for both systems.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import parse_wrk
from credence_common.contracts.certificate_numbers import format_certificate_number
from services.verification.domain import name_key

SEEDED_YEAR, SEEDED_REGION, UNKNOWN_REGION = 2025, "31", "32"  # no seeded number is in region 32
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬斌宇浩凯健俊帆帅旭宁龙林欣"
REVOKED_EVERY = 50  # one seeded certificate in 50 is revoked: its right pair answers 200 "revoked"


def certificate_number(index: int) -> str:
    """The ``index``-th seeded certificate's number (index from 0)."""
    return format_certificate_number(SEEDED_YEAR, SEEDED_REGION, index + 1)


def holder_name(index: int) -> str:
    """The ``index``-th seeded certificate's holder: a two- or three-character Chinese name."""
    surname = SURNAMES[index % len(SURNAMES)]
    first = GIVEN[(index // len(SURNAMES)) % len(GIVEN)]
    rest = index // (len(SURNAMES) * len(GIVEN))
    return surname + first + (GIVEN[rest % len(GIVEN)] if rest else "")


def wrong_name(index: int) -> str:
    """A name that is not the holder's: one character added (a different name key by construction)."""
    return holder_name(index) + "某"


@dataclass(frozen=True)
class Mix:
    right: float = 0.85
    wrong_name: float = 0.10
    unknown_number: float = 0.05

    def describe(self) -> str:
        return (f"{self.right:.0%} right pairs, {self.wrong_name:.0%} wrong names, "
                f"{self.unknown_number:.0%} unknown numbers")


@dataclass
class MixedChecks:
    bodies: list[dict]
    kinds: dict[str, int] = field(default_factory=dict)


def check_mix(certificates: int, count: int, seed: int = 18, mix: Mix = Mix()) -> MixedChecks:
    """``count`` check bodies over ``certificates`` seeded certificates, drawn at random (seeded): a right
    pair, a wrong name for a seeded number, or a well-formed number nobody holds, in ``mix``'s proportions."""
    if certificates < 1 or count < 1:
        raise ValueError("certificates and count must be positive")
    rng = random.Random(seed)
    bodies: list[dict] = []
    kinds = {"right": 0, "wrong_name": 0, "unknown_number": 0}
    for _ in range(count):
        draw = rng.random()
        index = rng.randrange(certificates)
        if draw < mix.right:
            kind, body = "right", {"holder_name": holder_name(index), "certificate_number": certificate_number(index)}
        elif draw < mix.right + mix.wrong_name:
            kind, body = "wrong_name", {"holder_name": wrong_name(index),
                                        "certificate_number": certificate_number(index)}
        else:
            serial = rng.randrange(1, 10**8)
            kind, body = "unknown_number", {"holder_name": holder_name(index),
                                            "certificate_number": format_certificate_number(SEEDED_YEAR,
                                                                                            UNKNOWN_REGION, serial)}
        kinds[kind] += 1
        bodies.append(body)
    return MixedChecks(bodies, kinds)


def seed_lines(certificates: int, now: str):
    """CSV lines for verification's ``verifiable_certificates``: what its read model would hold after
    ``certificates`` ``certificate.issued`` events (one in ``REVOKED_EVERY`` revoked since)."""
    for index in range(certificates):
        name = holder_name(index)
        status = "revoked" if index % REVOKED_EVERY == REVOKED_EVERY - 1 else "valid"
        yield (f"{certificate_number(index)},{uuid.UUID(int=index + 1, version=4)},{name},{name_key(name)},"
               f"**************{index % 10000:04d},ZK-LAW,Law (self-taught examination),2025-12-01,{status},"
               f"{now},1\n")


def seed_certificates(db_uri: str, certificates: int, workdir: Path) -> None:
    """A raw COPY into verification's read model (what is measured is the checking, not the seeding)."""
    from bench.result_import import copy_lines

    now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    copy_lines(db_uri, "COPY verifiable_certificates (certificate_number, certificate_id, holder_name, "
                       "holder_name_key, resident_id_number_masked, program_code, program_name, issued_on, status, "
                       "updated_at, sequence) FROM STDIN WITH (FORMAT csv)",
               seed_lines(certificates, now), workdir / "verifiable-certificates.csv")


# --- load -----------------------------------------------------------------------------------------------

# each request built by %(request)s from a random line of the file (a check body, a token), answers counted by status
LUA = """\
local lines = {}
for line in io.lines("%(lines)s") do lines[#lines + 1] = line end
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
  local line = lines[math.random(#lines)]
  return %(request)s
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


@dataclass(frozen=True)
class MixResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    statuses: dict[int, int]
    socket_errors: int

    def answers(self) -> str:
        return " ".join(f"{status}:{n}" for status, n in sorted(self.statuses.items()))


def parse_mix(output: str) -> MixResult:
    base = parse_wrk(output)
    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+): (\d+)$", output, re.M)}
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return MixResult(base.requests_per_second, base.p50_ms, base.p99_ms, base.requests, statuses,
                     sum(int(n) for n in socket.groups()) if socket else 0)


def write_bodies(checks: MixedChecks, path: Path) -> Path:
    path.write_text("".join(json.dumps(body) + "\n" for body in checks.bodies), encoding="ascii")
    return path


POST_BODY = 'wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)'
GET_WITH_TOKEN = 'wrk.format("GET", nil, {["Authorization"] = "Bearer " .. line})'


def post_mix(url: str, bodies: Path, seconds: float, clients: int, workdir: Path, seed: int = 18) -> MixResult:
    """``clients`` keep-alive connections (one wrk thread per 16) for ``seconds``, each request a random body."""
    return random_lines_load(url, bodies, POST_BODY, seconds, clients, workdir, seed)


def random_lines_load(url: str, lines: Path, request: str, seconds: float, clients: int, workdir: Path,
                      seed: int = 18) -> MixResult:
    """``clients`` keep-alive connections (one wrk thread per 16) for ``seconds``, each request ``request`` (a Lua
    expression of ``line``) from a random line of ``lines``."""
    script = workdir / "load.lua"
    script.write_text(LUA % {"lines": lines, "seed": seed, "request": request}, encoding="utf-8")
    threads = max(1, min(2, clients // 16))
    completed = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:.0f}s", "--latency",
                                "--timeout", "10s", "-s", str(script), url],
                               capture_output=True, text=True, check=True)
    return parse_mix(completed.stdout)


# --- the table ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SystemResult:
    label: str
    loaded: MixResult  # at ``clients`` connections
    lone: MixResult  # one connection


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def honest_table(credence: SystemResult, baselines: list[SystemResult], clients: int,
                 references: list[SystemResult] = ()) -> str:
    """The markdown table: each system's throughput and p50/p99 at ``clients`` connections, its lone-request
    p50, and Credence's ratios to each baseline (throughput: Credence / baseline, higher is better for
    Credence; lone p50: Credence / baseline, lower is better for Credence)."""
    lines = [f"| system | req/s at {clients} | p50 ms | p99 ms | lone p50 ms | answers at {clients} | "
             "Credence / this: req/s | Credence / this: lone p50 |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for system in [credence, *baselines, *references]:
        is_credence = system is credence
        lines.append(
            f"| {system.label} | {system.loaded.requests_per_second:,.0f} | {system.loaded.p50_ms:.1f} | "
            f"{system.loaded.p99_ms:.1f} | {system.lone.p50_ms:.2f} | {system.loaded.answers()}"
            + (f" errors:{system.loaded.socket_errors}" if system.loaded.socket_errors else "") + " | "
            + ("- | - |" if is_credence else
               f"{_ratio(credence.loaded.requests_per_second, system.loaded.requests_per_second)} | "
               f"{_ratio(credence.lone.p50_ms, system.lone.p50_ms)} |"))
    return "\n".join(lines)


# --- rounds: the ratio on a host whose speed drifts -----------------------------------------------------

def paired_rounds(rounds: int, credence: Callable[[], SystemResult], baseline: Callable[[], SystemResult]
                  ) -> str:
    """Credence and one baseline measured back to back ``rounds`` times, each pair's ratios printed as they come,
    then their medians. On a shared host the same system's throughput moves by a fifth to a third within
    minutes (docs/performance.md); a ratio from two neighbouring measurements, repeated, says more than one
    table. Returns the summary line."""
    loaded, lone = [], []
    for number in range(1, rounds + 1):
        ours, theirs = credence(), baseline()
        loaded.append(ours.loaded.requests_per_second / theirs.loaded.requests_per_second)
        lone.append(ours.lone.p50_ms / theirs.lone.p50_ms)
        print(f"  round {number}: Credence {ours.loaded.requests_per_second:,.0f} req/s (p99 {ours.loaded.p99_ms:.1f} "
              f"ms, lone p50 {ours.lone.p50_ms:.2f} ms), baseline {theirs.loaded.requests_per_second:,.0f} req/s "
              f"(p99 {theirs.loaded.p99_ms:.1f} ms, lone p50 {theirs.lone.p50_ms:.2f} ms): ratio req/s "
              f"{loaded[-1]:.2f}, lone p50 {lone[-1]:.2f} x", flush=True)
    each = ", ".join(f"{ratio:.2f}" for ratio in loaded)
    each_lone = ", ".join(f"{ratio:.2f}" for ratio in lone)
    summary = (f"median of {rounds} paired rounds: req/s ratio {statistics.median(loaded):.2f} (each: {each}), "
               f"lone p50 {statistics.median(lone):.2f} x (each: {each_lone})")
    print(summary, flush=True)
    return summary


# --- the baseline's server ------------------------------------------------------------------------------

@contextmanager
def gunicorn(app: str, env: dict, workers: int, threads: int = 8) -> Iterator[str]:
    """The baseline served as a team would serve it: gunicorn, gthread workers (HTTP/1.1 keep-alive, which the
    sync workers lack), ``workers`` processes of ``threads`` threads; ``app`` a ``module:factory()`` spec.
    Yields its URL once it accepts connections."""
    from deploy.platform import free_port, wait_for_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(workers), "--threads",
                               str(threads), "--keep-alive", "5", "-b", f"127.0.0.1:{port}", "--log-level",
                               "warning", app], env=env)
    try:
        if not wait_for_port(port, 30, server):
            raise RuntimeError(f"gunicorn {app} did not start")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


def baseline_label(workers: int, threads: int = 8) -> str:
    return f"gunicorn gthread {workers} worker{'s' if workers > 1 else ''} x {threads} threads + psycopg2"
