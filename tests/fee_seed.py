"""Payments' fee schedule as its migration 0002 seeds it: the one place those starting amounts live (the live
schedule is payments' ``fees`` table, changed by staff). Tests read it here instead of copying the amounts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MIGRATION = Path(__file__).parents[1] / "services/payments/migrations/versions/0002_fees_dues_orders_refunds.py"


def seeded_fees() -> dict[str, int]:
    """Fee code -> fen."""
    spec = importlib.util.spec_from_file_location("payments_migration_0002", MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return {code: fen for code, _description, fen in migration.STARTING_FEES}
