"""What every local emulator of an outside vendor shares (WeChat Pay, Tencent Cloud FaceID and SMS, the degree
registry): an HTTP server on a daemon thread of its own, plain or over TLS with a test CA, started and stopped as a
context manager. Tests and ``make run-emulated`` use them; production never does."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class EmulatedVendor:
    thread_name = "vendor-emulator"

    def _listen(self, handler: type[BaseHTTPRequestHandler], host: str, port: int) -> None:
        """Bind the server (port 0: any free one); it serves from ``start``."""
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None
        self.scheme = "http"

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def serve_https(self, authority: Any) -> Self:
        """Serve over TLS (before ``start``) with a test CA's certificate (tests/tls.py), as production wants
        https://: every URL the emulator hands out is then https."""
        authority.serve_https(self.server)
        self.scheme = "https"
        return self

    def start(self) -> Self:
        self.thread = threading.Thread(target=self.server.serve_forever, name=self.thread_name, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
