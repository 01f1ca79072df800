"""The soak's arithmetic and verdicts (bench/soak.py): the memory slope, the queue listing, what a table is expected
to do, and which outcome passes. The machinery end to end: tests/e2e/test_soak.py."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.soak import (
    AUDIT,
    BUSINESS,
    PRUNED,
    STATIC,
    THRESHOLDS,
    UNPRUNED,
    Outcome,
    Sample,
    judge,
    memory_rows,
    parse_queues,
    render,
    slope_per_hour,
    svg_plot,
    table_class,
    throughput,
)


def test_the_slope_is_least_squares_in_units_per_hour():
    assert slope_per_hour([(0, 100.0), (1800, 105.0), (3600, 110.0)]) == pytest.approx(10.0)
    # noise around a flat line: no slope
    assert slope_per_hour([(0, 100.0), (900, 101.0), (1800, 99.0), (2700, 101.0), (3600, 99.0)]) == \
        pytest.approx(-0.8)
    assert slope_per_hour([(0, 5.0)]) is None and slope_per_hour([(10, 5.0), (10, 6.0)]) is None


def test_queue_listing_sums_ready_and_unacknowledged_and_skips_what_is_not_a_queue():
    lines = ["name\ttype\tmessages_ready\tmessages_unacknowledged\tconsumers",
             "rpc-identity\tclassic\t2\t1\t1", "credence.dead-letters.scoring\tquorum\t0\t0\t0", ""]
    assert parse_queues(lines) == {"rpc-identity": 3, "credence.dead-letters.scoring": 0}


def test_every_table_has_an_expected_behaviour():
    assert table_class("scoring.idempotency_records") == PRUNED
    assert table_class("identity.refresh_tokens") == UNPRUNED
    assert table_class("scoring.result_audit") == AUDIT
    assert table_class("certificates.certificates") == BUSINESS
    assert table_class("scoring.programs") == STATIC
    assert table_class("payments.outbox_unpublished") == "drained"


def outcome(rss_growth_per_hour: float = 0.0, minutes: float = 30.0, *, queue_end: int = 0, unpublished: int = 0,
            records=(0, 50, 90, 30, 70), static_end: int = 2) -> Outcome:
    """A made-up run: samples every 15 s over ``minutes``, each process growing at ``rss_growth_per_hour``."""
    load = minutes * 60
    times = [t * 15.0 for t in range(int(load // 15) + 1)]
    samples = []
    for i, t in enumerate(times):
        for name in ("identity", "gateway", "rabbitmq (soak node)"):
            samples.append(Sample(t, "rss_mib", name, 100 + rss_growth_per_hour * t / 3600 + (i % 2) * 0.5))
        samples.append(Sample(t, "queue", "rpc-identity", 1 if 0 < t < load else queue_end))
        samples.append(Sample(t, "queue", "credence.dead-letters.scoring", 0))
        samples.append(Sample(t, "rows", "scoring.programs", 2 if t < load else static_end))
        samples.append(Sample(t, "rows", "scoring.outbox_unpublished", 3 if t < load else unpublished))
        samples.append(Sample(t, "rows", "identity.candidates", i))
        samples.append(Sample(t, "rows", "scoring.idempotency_records", records[i * len(records) // len(times)]))
        samples.append(Sample(t, "done", "journeys", i * 10))
    return Outcome("sqlite", minutes, 300.0, load, samples, counters={"check": Counter({200: 5, 404: 2})},
                   journeys_completed=len(times) * 10)


def verdicts(result: Outcome) -> dict[str, bool | None]:
    return {check.what.split(":")[0] if ":" in check.what else check.what: check.ok for check in judge(result)}


def test_a_flat_run_passes_and_says_so():
    result = outcome()
    assert all(ok is not False for ok in verdicts(result).values())
    assert render(result, judge(result), "abc1234", "2026-12-07").rstrip().endswith("PASSED")
    rows = {name: slope for name, _first, _last, slope, _count, _later in memory_rows(result)}
    assert abs(rows["identity"]) < 1
    assert "rabbitmq (soak node)" not in verdicts(result)  # reported, not judged
    assert throughput(result)[0] == ("journeys", pytest.approx(40.0), pytest.approx(40.0))
    assert "<polyline" in svg_plot(result)


def test_memory_growing_past_the_threshold_fails_the_process():
    limit = THRESHOLDS["rss_slope_mib_per_hour"]
    result = outcome(rss_growth_per_hour=limit * 2)
    assert verdicts(result)["identity"] is False and verdicts(result)["gateway"] is False
    assert render(result, judge(result)).rstrip().endswith("FAILED")
    assert verdicts(outcome(rss_growth_per_hour=limit / 2))["identity"] is True
    steady = {name: later for name, *_rest, later in memory_rows(result)}
    assert steady["identity"] == pytest.approx(limit * 2, rel=0.1)  # a steady leak keeps its slope


def test_a_short_run_does_not_judge_slopes_nor_pruning():
    result = outcome(rss_growth_per_hour=1000, minutes=2)
    result.warmup_seconds = 0
    found = verdicts(result)
    assert found["identity"] is None
    assert found["idempotency records pruned (their count fell) in every service that keeps them"] is None


def test_a_queue_left_full_an_unpublished_outbox_or_a_grown_static_table_fails():
    assert verdicts(outcome(queue_end=4))["every queue drained after the load (ready + unacked = 0)"] is False
    assert verdicts(outcome(unpublished=1))["no unpublished outbox rows at the end"] is False
    assert verdicts(outcome(static_end=3))["no table outside the expected-growth lists grew"] is False


def test_idempotency_records_that_never_fall_fail():
    found = verdicts(outcome(records=(0, 30, 60, 90, 120)))
    assert found["idempotency records pruned (their count fell) in every service that keeps them"] is False
