"""Slow clients under load (issue #18, item 4): the public-check load with and without a thousand slow
connections held open against the gateway, the same attack as ``tests/security/test_slow_clients.py``.

The crowd: ``--slow`` connections (1,000 by default), a third each idle, sending headers a byte every half
second, and sending half a body then a byte every half second. The gateway closes each at its read deadline
(production's: 10 s for headers, 30 s for a body); the crowd opens another of the same kind at once, as an
attacker would, so that ``--slow`` are held for the whole load. One thread with non-blocking sockets drives them
all (a selector), in this process; the load is wrk, in its own.

The load: the honest baseline's (bench/honest.py): random (holder name, number) pairs over 100,000 seeded
certificates, 32 keep-alive connections; then one connection for the lone p50. Target: the p99 with the crowd
at most 2 x the p99 without it. Prints a table; asserts nothing. ``make bench-slow``.
"""

from __future__ import annotations

import argparse
import errno
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

from bench import honest
from bench.load import wrk_available
from bench.public_check import bench_platform
from deploy.platform import quiet_client_logging
from deploy.processes import DEFAULT_GATEWAY_SERVER, GATEWAY_SERVERS

KINDS = ("idle", "trickling-headers", "half-body")
TRICKLE_EVERY_SECONDS = 0.5
HEAD_NEVER_ENDING = b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"a" * 4000  # no blank line
BODY_LENGTH = 4000
BODY_HEAD = (b"POST /api/v1/certificate-checks HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n" % BODY_LENGTH)


def half_request(kind: str) -> tuple[bytes, bytes]:
    """What a slow connection of ``kind`` sends at once, and what it then trickles a byte at a time."""
    if kind == "trickling-headers":
        return HEAD_NEVER_ENDING[:1], HEAD_NEVER_ENDING[1:]
    if kind == "half-body":
        body = b'{"holder_name": "' + b"x" * BODY_LENGTH
        return BODY_HEAD + body[:BODY_LENGTH // 2], body[BODY_LENGTH // 2:BODY_LENGTH]
    return b"", b""


@dataclass
class _Slow:
    kind: str
    sock: socket.socket
    to_trickle: bytes


@dataclass
class SlowCrowd:
    """Holds ``count`` slow connections open to ``address`` until ``stop()``, reopening each one the server
    closes."""

    address: tuple[str, int]
    count: int
    opened: int = 0  # connections opened in all, reopened ones included
    closed_by_server: int = 0
    failed_to_open: int = 0
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _open: dict = field(default_factory=dict)  # fileno -> _Slow
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _connect(self, kind: str) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
        except OSError:
            self.failed_to_open += 1
            return
        first, rest = half_request(kind)
        if first:
            sock.sendall(first)
        sock.setblocking(False)
        self._open[sock.fileno()] = _Slow(kind, sock, rest)
        self._selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def _close(self, slow: _Slow) -> None:
        self._selector.unregister(slow.sock)
        self._open.pop(slow.sock.fileno(), None)
        slow.sock.close()

    def start(self) -> None:
        for index in range(self.count):
            self._connect(KINDS[index % len(KINDS)])
        self._thread = threading.Thread(target=self._run, name="slow-crowd", daemon=True)
        self._thread.start()

    @property
    def held(self) -> int:
        return len(self._open)

    def _run(self) -> None:
        next_trickle = time.monotonic()
        while not self._stopping.is_set():
            for key, _events in self._selector.select(timeout=0.1):
                slow = self._open.get(key.fileobj.fileno())
                if slow is None:
                    continue
                try:
                    closed = not slow.sock.recv(65536)  # a 408 then EOF, or EOF
                except BlockingIOError:
                    continue
                except OSError as error:
                    closed = error.errno in (errno.ECONNRESET, errno.EPIPE)
                if closed:
                    self.closed_by_server += 1
                    self._close(slow)
                    self._connect(slow.kind)  # the attacker replaces it at once
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_EVERY_SECONDS
                for slow in list(self._open.values()):
                    if slow.to_trickle:
                        try:
                            slow.sock.send(slow.to_trickle[:1])
                            slow.to_trickle = slow.to_trickle[1:]
                        except (BlockingIOError, OSError):
                            pass  # closed by the server: the reader above notices

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for slow in list(self._open.values()):
            self._close(slow)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--slow", type=int, default=1000, help="slow connections held during the second load")
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--gateway", choices=GATEWAY_SERVERS, default=DEFAULT_GATEWAY_SERVER,
                        help="the gateway's HTTP layer (GATEWAY_SERVER)")
    args = parser.parse_args()
    if not wrk_available():
        print("wrk is missing: `make bench-tools` installs it")
        return 2
    quiet_client_logging()
    with bench_platform(prefix="credence-bench-slow-", GATEWAY_SERVER=args.gateway) as (platform, env, workdir):
        honest.seed_certificates(env["VERIFICATION_DB_URI"], args.certificates, workdir)
        checks = honest.check_mix(args.certificates, 100_000)
        bodies = honest.write_bodies(checks, workdir / "checks.jsonl")
        url = platform.gateway_url + "/api/v1/certificate-checks"
        honest.post_mix(url, bodies, 2, args.clients, workdir)  # warm-up
        without = honest.post_mix(url, bodies, args.seconds, args.clients, workdir)
        lone_without = honest.post_mix(url, bodies, args.seconds, 1, workdir)
        crowd = SlowCrowd(("127.0.0.1", platform.gateway_port), args.slow)
        crowd.start()
        try:
            held_at_start = crowd.held
            with_crowd = honest.post_mix(url, bodies, args.seconds, args.clients, workdir)
            lone_with = honest.post_mix(url, bodies, args.seconds, 1, workdir)
            held_at_end = crowd.held
        finally:
            crowd.stop()
        ratio = with_crowd.p99_ms / without.p99_ms if without.p99_ms else float("inf")
        print(f"\nPublic checks through the {args.gateway} gateway with {args.slow:,} slow connections held "
              f"(production deadlines: 10 s headers, "
              f"30 s body; each closed one reopened at once), {args.clients} wrk connections, {args.seconds:.0f} s "
              f"per load, {args.certificates:,} certificates:\n")
        print("| load | req/s | p50 ms | p99 ms | lone p50 ms | answers | socket errors |")
        print("|---|---:|---:|---:|---:|---|---:|")
        for label, loaded, lone in (("without slow connections", without, lone_without),
                                    (f"with {args.slow:,} slow connections", with_crowd, lone_with)):
            print(f"| {label} | {loaded.requests_per_second:,.0f} | {loaded.p50_ms:.1f} | {loaded.p99_ms:.1f} | "
                  f"{lone.p50_ms:.2f} | {loaded.answers()} | {loaded.socket_errors} |")
        print(f"\nslow connections held: {held_at_start:,} at the start, {held_at_end:,} at the end; "
              f"{crowd.opened:,} opened in all, {crowd.closed_by_server:,} closed by the gateway at their deadline, "
              f"{crowd.failed_to_open} could not be opened")
        print(f"p99 with / without: {ratio:.2f} (target <= 2.00: {'met' if ratio <= 2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
