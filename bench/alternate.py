"""Alternating runs of two checkouts of Credence: the same ``bench.suite`` scenario, old then new, round after round.

On a host whose speed moves between minutes, a ratio from one run of each side, hours apart, says more about the
host than the change; rounds that alternate minute by minute compare them under the same weather. Each side runs
from its own checkout (the platform's processes start in the checkout's directory, so they import its code) with
this environment's Python::

    git worktree add /tmp/old <commit>
    python -m bench.alternate /tmp/old . --rounds 3 -- --only issue --certificates 20000

It prints each run's table rows and machine speed as they come, and asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the checkout to compare against (run first in each round)")
    parser.add_argument("new", type=Path, help="the checkout with the change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("suite_args", nargs=argparse.REMAINDER, help="after --: the arguments for bench.suite")
    args = parser.parse_args(argv)
    suite_args = [a for a in args.suite_args if a != "--"] or ["--only", "issue", "--certificates", "20000"]
    for round_number in range(1, args.rounds + 1):
        for side, checkout in (("old", args.old), ("new", args.new)):
            began = time.strftime("%H:%M:%S", time.gmtime())
            completed = subprocess.run([sys.executable, "-m", "bench.suite", *suite_args], cwd=checkout.resolve(),
                                       capture_output=True, text=True)
            lines = [line for line in completed.stdout.splitlines()
                     if line.startswith(("| ", "- ", "Machine speed")) and not line.startswith(("| scenario", "|---"))]
            print(f"round {round_number}, {side} ({checkout}), started {began} UTC, exit {completed.returncode}:")
            for line in lines or completed.stderr.splitlines()[-5:]:
                print(f"    {line}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
