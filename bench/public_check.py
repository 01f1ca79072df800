"""Benchmark the public check, the platform's hottest read path.

Starts its own platform (SQLite, a throw-away RabbitMQ vhost, free ports), issues one certificate via
the demo journey, then measures:
  1. the verification service over nameko RPC, sequential (the service's own cost plus one hop);
  2. the same check over HTTP through the gateway, sequential and with concurrent clients.
Prints requests per second, latency percentiles and the gateway's overhead as a ratio.

    make bench            # or: .venv/bin/python -m bench.public_check --seconds 5 --clients 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from deploy.journey import run_journey
from deploy.platform import Platform, free_port, quiet_client_logging
from deploy.processes import PROCESSES, SERVICE_NAMES

MANAGEMENT = os.environ.get("RABBIT_CTL_URI", "http://guest:guest@127.0.0.1:15672").rstrip("/")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def report(label: str, latencies: list[float], elapsed: float) -> float:
    rate = len(latencies) / elapsed
    print(f"{label:<44} {rate:>8.0f} req/s   p50 {percentile(latencies, 0.5):6.1f} ms   "
          f"p99 {percentile(latencies, 0.99):6.1f} ms   n={len(latencies)}")
    return rate


def run_for(seconds: float, call) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def concurrent(seconds: float, clients: int, make_call) -> tuple[list[float], float]:
    results: list[list[float]] = [[] for _ in range(clients)]

    def worker(index):
        call = make_call()
        results[index], _ = run_for(seconds, call)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for r in results for x in r], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    args = parser.parse_args()
    quiet_client_logging()

    vhost = f"credence_bench_{uuid.uuid4().hex[:8]}"
    requests.put(f"{MANAGEMENT}/api/vhosts/{vhost}", timeout=10).raise_for_status()
    requests.put(f"{MANAGEMENT}/api/permissions/{vhost}/guest", timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    workdir = Path(tempfile.mkdtemp(prefix="credence-bench-"))
    env = dict(os.environ, AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}", PUBLIC_RATE_LIMIT_PER_MINUTE="0",
               CHECKS_PER_NUMBER_PER_MINUTE="0",
               OUTBOX_POLL_INTERVAL="0.2", LOG_LEVEL="WARNING")
    for spec in PROCESSES:
        if spec.metrics_port_env:
            env[spec.metrics_port_env] = str(free_port())
    for service in SERVICE_NAMES:
        env[f"{service.upper()}_DB_URI"] = f"sqlite:///{workdir / service}.sqlite"
    platform = Platform(env, workdir / "log")
    try:
        platform.migrate()
        platform.start()
        journey = run_journey(platform.gateway_url, say=lambda _line: None)
        check = {"holder_name": journey["full_name"],
                 "certificate_number": journey["certificate"]["certificate_number"]}
        print(f"Public check benchmark ({args.seconds:.0f}s each, SQLite, loopback, 2 cores)\n")

        from nameko.standalone.rpc import ServiceRpcProxy

        with ServiceRpcProxy("verification", {"AMQP_URI": env["AMQP_URI"]}, timeout=10) as verification:
            assert verification.public_check(check)["result"] == "valid"
            rpc_rate = report("verification RPC, sequential",
                              *run_for(args.seconds, lambda: verification.public_check(check)))

        url = platform.gateway_url + "/api/v1/certificate-checks"

        def http_client():
            session = requests.Session()
            return lambda: session.post(url, json=check, timeout=10).raise_for_status()

        http_rate = report("gateway HTTP -> RPC, sequential", *run_for(args.seconds, http_client()))
        parallel_rate = report(f"gateway HTTP -> RPC, {args.clients} clients",
                               *concurrent(args.seconds, args.clients, http_client))
        print(f"\nratio gateway/RPC sequential: {http_rate / rpc_rate:.2f}   "
              f"concurrency gain ({args.clients} clients / 1): {parallel_rate / http_rate:.2f}")
    finally:
        platform.stop()
        requests.delete(f"{MANAGEMENT}/api/vhosts/{vhost}", timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
