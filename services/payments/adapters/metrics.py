"""Reconciliation's outcome as Prometheus series, served on the payments process's metrics port beside every other
``credence_*`` metric (credence_common/observability/metrics.py): how many disagreements the last reconciliation run
found, by
kind and entry, and when a run last succeeded. The alerts on them are in deploy/observability/prometheus/alerts.yml
(CredencePaymentsReconciliationMismatch, CredencePaymentsReconciliationStale)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

from prometheus_client import Gauge

from credence_common.contracts.payments import ReconciliationReport

MISMATCH_KINDS = ("missing_at_provider", "missing_in_credence", "amount_differs")
ENTRIES = ("payment", "refund")

RECONCILIATION_MISMATCHES = Gauge(
    "credence_payments_reconciliation_mismatches",
    "Disagreements between the provider's statement (WeChat Pay's trade bill) and our ledger found by the last "
    "reconciliation run of the latest day reconciled, by kind and entry (0 when they agree).",
    ["provider", "kind", "entry"],
)
RECONCILIATION_LAST_SUCCESS = Gauge(
    "credence_payments_reconciliation_last_success_timestamp_seconds",
    "Unix time of the last reconciliation run that read the provider's statement (whatever it found).",
    ["provider"],
)
RECONCILED_DAY = Gauge(
    "credence_payments_reconciliation_day_timestamp_seconds",
    "The Beijing business day the mismatch counts are for (Unix time of its start, UTC midnight of that date).",
    ["provider"],
)

def record_reconciliation(report: ReconciliationReport, now: float | None = None) -> None:
    """Set the series from the scheduled run's report (service.reconcile_previous_day). A staff member checking
    some other day through the API does not set them: the alert is about the latest day, not a question asked."""
    counts: Counter[tuple[str, str]] = Counter((mismatch.kind, mismatch.entry) for mismatch in report.mismatches)
    for kind in MISMATCH_KINDS:
        for entry in ENTRIES:
            RECONCILIATION_MISMATCHES.labels(report.provider, kind, entry).set(counts.get((kind, entry), 0))
    RECONCILED_DAY.labels(report.provider).set((report.day - date(1970, 1, 1)).days * 86400.0)
    RECONCILIATION_LAST_SUCCESS.labels(report.provider).set(time.time() if now is None else now)
