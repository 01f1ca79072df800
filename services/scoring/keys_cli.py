"""``credence scoring key-status|rotate-keys``: the keys that protect the roster's names and the outbox
(rotation as for certificates: README.md, "Data keys")."""

from __future__ import annotations

from functools import partial

from credence_common.persistence import sealed
from services.scoring.adapters.protection import DATA_KEYS, Sealed
from services.scoring.models import Base

sealed_tables = partial(sealed.sealed_tables, Base.metadata, Sealed)
app = sealed.key_commands(DATA_KEYS, sealed_tables, "The keys that protect personal data in scoring.")

if __name__ == "__main__":
    app()
