"""Running a hypothesis state machine with a random seed that is printed and named on failure.

``run_state_machine_as_test`` draws a fresh seed per run but reports it only for some failures; here the seed
is drawn (or taken from ``CREDENCE_STATE_MACHINE_SEED``), printed before the run (pytest shows it with a failing
test's output) and added to the failure, so a failing run is repeated by setting that variable."""

from __future__ import annotations

import os
import secrets

from hypothesis import seed as hypothesis_seed
from hypothesis import settings as Settings
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test

SEED_VARIABLE = "CREDENCE_STATE_MACHINE_SEED"


def run_with_seed(machine: type[RuleBasedStateMachine], settings: Settings) -> int:
    """Runs ``machine`` under ``settings`` (random rule order: never ``derandomize``) and returns the seed."""
    # hypothesis's own "ci" profile, loaded when CI is set (as .ci/run sets it), derandomizes every run: the seed
    # chosen here would then be ignored and every CI run would walk the same interleavings
    settings = Settings(settings, derandomize=False)
    chosen = int(os.environ.get(SEED_VARIABLE) or secrets.randbits(64))
    print(f"{machine.__name__}: hypothesis seed {chosen} ({SEED_VARIABLE}={chosen} runs the same cases again)")
    test = hypothesis_seed(chosen)(get_state_machine_test(machine, settings=settings))
    try:
        test()
    except BaseException as failure:
        failure.add_note(f"{machine.__name__} ran with hypothesis seed {chosen}: set {SEED_VARIABLE}={chosen} to "
                         "run the same cases again")
        raise
    return chosen
