"""``make demo``: drive one candidate's journey against the running platform."""

from __future__ import annotations

import os
import sys

from deploy.journey import JourneyFailed, run_journey
from deploy.platform import broker_problem


def main() -> int:
    base_url = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8000")
    problem = broker_problem(os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"Credence demo against {base_url}\n")
    try:
        result = run_journey(base_url)
    except JourneyFailed as exc:
        print(f"\nDemo failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"\nCannot reach the gateway at {base_url} ({exc}). Is 'make run' running?", file=sys.stderr)
        return 1
    print(f"\nDone: certificate {result['certificate']['certificate_number']} verifies as "
          f"'{result['verdict']['result']}'. Try it on {base_url}/verify")
    return 0


if __name__ == "__main__":
    sys.exit(main())
