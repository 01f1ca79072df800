"""The honest-baseline benchmark's pure parts: the input mix, the seeded rows, the reading of wrk, the table."""

import csv
import io

from bench.honest import (
    Mix,
    MixResult,
    SystemResult,
    certificate_number,
    check_mix,
    holder_name,
    honest_table,
    paired_rounds,
    parse_mix,
    seed_lines,
    wrong_name,
)
from credence_common.contracts.certificate_numbers import normalise_certificate_number
from services.verification.domain import name_key
from tests.unit.test_bench_load import WRK_OUTPUT


def test_the_mix_is_seeded_and_in_its_proportions():
    first = check_mix(100_000, 20_000, seed=1)
    assert first.bodies == check_mix(100_000, 20_000, seed=1).bodies
    assert first.bodies != check_mix(100_000, 20_000, seed=2).bodies
    assert sum(first.kinds.values()) == len(first.bodies) == 20_000
    assert abs(first.kinds["right"] / 20_000 - 0.85) < 0.02
    assert abs(first.kinds["wrong_name"] / 20_000 - 0.10) < 0.02
    assert abs(first.kinds["unknown_number"] / 20_000 - 0.05) < 0.02


def test_each_kind_of_check_is_what_it_says():
    certificates = 1_000
    seeded = {certificate_number(i): name_key(holder_name(i)) for i in range(certificates)}
    checks = check_mix(certificates, 5_000, seed=3, mix=Mix(right=0.5, wrong_name=0.3, unknown_number=0.2))
    right = wrong = unknown = 0
    for body in checks.bodies:
        number = body["certificate_number"]
        assert normalise_certificate_number(number) == number  # every number well-formed: no 422 in the load
        if number not in seeded:
            unknown += 1
        elif seeded[number] == name_key(body["holder_name"]):
            right += 1
        else:
            wrong += 1
    assert (right, wrong, unknown) == (checks.kinds["right"], checks.kinds["wrong_name"],
                                       checks.kinds["unknown_number"])
    assert len({body["certificate_number"] for body in checks.bodies}) > 900  # spread over the certificates


def test_wrong_names_never_match_and_names_fit_the_column():
    for index in (0, 1, 2_499, 2_500, 99_999, 124_999):
        assert name_key(wrong_name(index)) != name_key(holder_name(index))
        assert 2 <= len(holder_name(index)) <= 40 and len(wrong_name(index)) <= 40


def test_seed_lines_are_the_read_model_columns():
    rows = list(csv.reader(io.StringIO("".join(seed_lines(100, "2026-12-06 08:00:00+00")))))
    assert len(rows) == 100 and all(len(row) == 11 for row in rows)
    assert rows[0][0] == certificate_number(0) and rows[0][2] == holder_name(0)
    assert rows[0][3] == name_key(holder_name(0))
    assert len({row[1] for row in rows}) == 100  # certificate_id is unique
    assert [row[8] for row in rows].count("revoked") == 2 and rows[49][8] == "revoked"
    assert all(len(row[4]) == 18 for row in rows)


def test_wrk_answers_are_counted_by_status():
    output = WRK_OUTPUT + "status 200: 7000\nstatus 404: 488\nstatus 429: 3\n"
    result = parse_mix(output)
    assert result.statuses == {200: 7000, 404: 488, 429: 3}
    assert result.socket_errors == 2 and result.requests == 7491 and result.p99_ms == 1020.0
    assert result.answers() == "200:7000 404:488 429:3"


def _system(label, rate, p50, p99, lone):
    return SystemResult(label, MixResult(rate, p50, p99, int(rate * 10), {200: 9, 404: 1}, 0),
                        MixResult(rate / 10, lone, lone * 2, 10, {200: 10}, 0))


def test_the_table_shows_ratios_against_each_baseline():
    credence = _system("Credence", 400.0, 70.0, 150.0, 4.0)
    one = _system("gunicorn 1", 800.0, 35.0, 60.0, 1.0)
    two = _system("gunicorn 2", 1600.0, 18.0, 40.0, 1.0)
    text = honest_table(credence, [one, two], 32, [_system("wsgiref", 200.0, 100.0, 500.0, 2.0)])
    lines = text.splitlines()
    assert lines[0].startswith("| system | req/s at 32 |")
    assert lines[2] == "| Credence | 400 | 70.0 | 150.0 | 4.00 | 200:9 404:1 | - | - |"
    assert lines[3] == "| gunicorn 1 | 800 | 35.0 | 60.0 | 1.00 | 200:9 404:1 | 0.50 | 4.00 |"
    assert lines[4].endswith("| 0.25 | 4.00 |")
    assert lines[5].startswith("| wsgiref | 200 |") and lines[5].endswith("| 2.00 | 2.00 |")


def test_paired_rounds_report_each_pairs_ratios_and_their_median():
    def system(label, rates, lone_ms):
        figures = iter(zip(rates, lone_ms, strict=True))

        def measure():
            rate, lone = next(figures)
            return SystemResult(label, MixResult(rate, 10.0, 20.0, 100, {200: 100}, 0),
                                MixResult(100.0, lone, lone, 100, {200: 100}, 0))
        return measure

    summary = paired_rounds(3, system("Credence", [900, 1200, 500], [6.0, 4.0, 9.0]),
                            system("baseline", [1000, 1000, 1000], [2.0, 2.0, 2.0]))
    assert summary == ("median of 3 paired rounds: req/s ratio 0.90 (each: 0.90, 1.20, 0.50), "
                       "lone p50 3.00 x (each: 3.00, 2.00, 4.50)")
