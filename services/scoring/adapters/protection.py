"""Personal data at rest in scoring: the roster's full names (from identity's confirmation events) and the
outbox's event envelopes (a candidate_qualified event carries the full name, and the outbox keeps published
events). The answers kept for Idempotency-Key retries are encrypted with a key derived from the client's
Idempotency-Key (``credence_common/persistence/idempotency.py``), not with these keys.

Sealed with ``SCORING_DATA_KEYS`` (active: ``SCORING_DATA_ACTIVE_KEY_ID``) as ``credence_common/persistence/sealed.py``
describes; ``credence scoring rotate-keys`` moves old values to the active key. Nothing in scoring looks a
candidate up by name (the ticket number is the key), so no blind index is kept. The service installs these keys
at start-up through ``dependencies.protection``.
"""

from __future__ import annotations

from pathlib import Path

from credence_common.persistence.sealed import DataKeys, sealed_type

CONFIG_FILE = Path(__file__).parents[1] / "config.yml"  # the service's config file
DATA_KEYS = DataKeys("scoring", CONFIG_FILE)
Sealed = sealed_type(DATA_KEYS)
