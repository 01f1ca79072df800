"""The benchmark's reading of wrk's report (the figures in docs/performance.md come through it)."""

from bench.load import parse_wrk

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/api/v1/certificate-checks
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.42ms    5.10ms  80.91ms   88.12%
    Req/Sec   752.44     60.21   860.00     71.00%
  Latency Distribution
     50%   20.36ms
     75%   22.80ms
     90%   26.01ms
     99%  1.02s
  7491 requests in 5.01s, 2.10MB read
  Socket errors: connect 0, read 0, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   1495.21
Transfer/sec:    429.63KB
"""


def test_wrk_figures_are_read_with_their_units():
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == 1495.21 and result.requests == 7491
    assert result.p50_ms == 20.36 and result.p99_ms == 1020.0
    assert result.errors == 5


def test_microseconds_are_read_as_fractions_of_a_millisecond():
    result = parse_wrk(WRK_OUTPUT.replace("20.36ms", "850.00us"))
    assert result.p50_ms == 0.85


def test_the_benchmark_table_shows_ratios_targets_and_memory():
    from bench.suite import Row, table

    rows = [Row("public check, 32 clients", 1500.0, "req/s", 12.0, 41.5, "one-process WSGI", 1000.0,
                ">= 1.0 x baseline", True),
            Row("issuance", 100.0, "certificates/s", baseline="raw publish", baseline_throughput=1000.0,
                target=">= 0.5 x baseline", met=False, note="every event delivered"),
            Row("whole candidate journeys", 2.5, "journeys/s")]
    text = table(rows, {"gateway": 97.4, "scoring": 120.0})
    assert "| public check, 32 clients | 1,500 req/s | 12.0 | 41.5 | one-process WSGI | 1,000 req/s | 1.50 |" in text
    assert "| 0.10 | >= 0.5 x baseline | NO |" in text
    assert "| whole candidate journeys | 2.5 journeys/s | - | - | - | - | - | - | - |" in text
    assert "- issuance: every event delivered" in text
    assert "Peak memory (MB, VmHWM): gateway 97, scoring 120" in text
