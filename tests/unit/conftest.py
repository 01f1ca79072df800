"""Unit tests: pure rules and helpers only. No broker, no database, no network."""

from __future__ import annotations

import warnings

# nameko imports eventlet, which prints a deprecation notice on import; it is noise in a unit run.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
