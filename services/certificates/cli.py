"""Operator commands for the certificates service's data keys (``credence certificates ...``).

    credence certificates key-status      # how many stored values each data key protects
    credence certificates rotate-keys     # re-encrypt everything under the active key

Rotation: put the new key first in CERTIFICATES_DATA_KEYS ("k2=<new>,k1=<old>"), set
CERTIFICATES_DATA_ACTIVE_KEY_ID=k2, restart certificates (new values use k2, old ones still decrypt), run
``rotate-keys``, check ``key-status`` shows nothing under k1, then remove k1. The command works in batches,
commits each, and can be stopped and rerun at any time: rows already under the active key are skipped.
"""

from __future__ import annotations

from functools import partial

from credence_common.persistence import sealed
from services.certificates.adapters.protection import DATA_KEYS, Sealed
from services.certificates.models import Base

sealed_tables = partial(sealed.sealed_tables, Base.metadata, Sealed)


def rotate(engine, keyring, batch_size: int = 500, progress=None) -> int:
    return sealed.rotate(engine, keyring, sealed_tables(), batch_size, progress)


def key_usage(engine, keyring):
    return sealed.key_usage(engine, keyring, sealed_tables())


app = sealed.key_commands(DATA_KEYS, sealed_tables, "The keys that protect personal data in certificates.")

if __name__ == "__main__":
    app()
