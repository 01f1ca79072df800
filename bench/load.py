"""HTTP load from a separate process: wrk (C, a few per cent of a core), so that the load generator does not
eat the two cores the platform is measured on. ``make bench`` installs Debian's wrk when it is missing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers, socket errors and timeouts


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", output, re.M)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return LoadResult(rate, percentiles[50], percentiles[99], requests, errors)


def post_json(url: str, body: dict, seconds: float, clients: int, workdir: Path, threads: int = 2) -> LoadResult:
    """``clients`` connections kept busy for ``seconds`` with the same JSON POST."""
    script = workdir / "post.lua"
    # a long-bracket Lua string takes the UTF-8 JSON as it is (LuaJIT reads no JSON \\u escapes)
    script.write_text('wrk.method = "POST"\n'
                      f"wrk.body = [==[{json.dumps(body, ensure_ascii=False)}]==]\n"
                      'wrk.headers["Content-Type"] = "application/json"\n', encoding="utf-8")
    completed = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:.0f}s", "--latency",
                                "--timeout", "10s", "-s", str(script), url],
                               capture_output=True, text=True, check=True)
    return parse_wrk(completed.stdout)
