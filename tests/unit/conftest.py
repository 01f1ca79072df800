"""Unit tests: pure rules and helpers only. No broker, no database, no network."""

from __future__ import annotations

import shutil
import warnings

import pytest

# nameko imports eventlet, which prints a deprecation notice on import; it is noise in a unit run.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus' own checker, for the configuration, the alert rules and the dashboard's queries; from Debian's
    prometheus package, which `make promtool` (part of `make test`) installs. Missing is a failure, not a skip."""
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed: run `make promtool` (Debian's prometheus package, which ships it), "
                    "or apt-get install --no-install-recommends prometheus")
    return found
