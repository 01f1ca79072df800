"""The gateway's HTTP server: nameko's web server with read deadlines and a bounded connection pool.

nameko's server (eventlet's WSGI server underneath) waits for ever for a request line, its headers and its
body, and leaves the body to the worker: a client that sends half a request holds its connection for ever,
and with a half-sent body one of the gateway's workers too, so 64 such clients froze the gateway (issue #17,
item 9). Here:

- the request line and headers must arrive within ``GATEWAY_HEADER_DEADLINE_SECONDS`` of the server starting
  to wait for them (also the idle time allowed between two requests on a kept-alive connection), and the
  whole body within ``GATEWAY_BODY_DEADLINE_SECONDS`` of the end of the headers. These are total deadlines:
  a byte every few seconds does not push them back, as a per-``recv`` timeout would;
- ``TracedHttp`` reads the body (``buffer_body``) before it takes a worker, so a slow body holds only its
  connection's green thread, never a worker;
- at most ``GATEWAY_MAX_CONNECTIONS`` connections are served at once (more wait in the listen backlog), and
  a connection's failure, or running out of file descriptors, never stops the server.

Everything HTTP-specific stays in this module and ``gateway/service.py``, so that the HTTP layer can be
replaced without touching the rest of the gateway.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import time
from dataclasses import dataclass
from functools import partial

import eventlet
from eventlet import wsgi
from eventlet.semaphore import Semaphore
from nameko.web.server import HttpOnlyProtocol, WebServer
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

DEFAULT_HEADER_DEADLINE_SECONDS = 10.0
DEFAULT_BODY_DEADLINE_SECONDS = 30.0  # the largest body (a 16 MiB result file) at about 560 KB/s
DEFAULT_MAX_CONNECTIONS = 4096
FILE_DESCRIPTORS_RESERVED = 256  # the broker's connections, logs, the listening socket, a margin
LISTEN_BACKLOG = 1024
# running out of file descriptors or memory for one accept is a reason to wait, not to stop serving
ACCEPT_ERRORS_TO_WAIT_OUT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_ERRORS_TO_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO})

TIMEOUT_BODY = json.dumps({"error": {"code": "request_timeout", "message":
                                     "The request did not arrive in time; send it again, whole."}})
INCOMPLETE_BODY = json.dumps({"error": {"code": "incomplete_body", "message":
                                        "The body ended before its Content-Length; send it again, whole."}})
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}


class BodyDeadlinePassed(Exception):
    """The request's body did not arrive whole within its deadline. Not an OSError nor a ValueError, which
    werkzeug's stream would take for a client that went away."""


@dataclass(frozen=True)
class ReadDeadlines:
    header_seconds: float
    body_seconds: float
    max_connections: int

    @classmethod
    def from_config(cls, config: dict) -> ReadDeadlines:
        deadlines = cls(
            header_seconds=float(config.get("GATEWAY_HEADER_DEADLINE_SECONDS", DEFAULT_HEADER_DEADLINE_SECONDS)),
            body_seconds=float(config.get("GATEWAY_BODY_DEADLINE_SECONDS", DEFAULT_BODY_DEADLINE_SECONDS)),
            max_connections=int(config.get("GATEWAY_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)))
        if deadlines.header_seconds <= 0 or deadlines.body_seconds <= 0 or deadlines.max_connections < 1:
            raise ValueError("GATEWAY_HEADER_DEADLINE_SECONDS and GATEWAY_BODY_DEADLINE_SECONDS must be positive "
                             "and GATEWAY_MAX_CONNECTIONS at least 1")
        return deadlines


def connection_capacity(wanted: int, soft: int, hard: int, reserved: int = FILE_DESCRIPTORS_RESERVED,
                        unlimited: int = -1) -> tuple[int, int]:
    """(the open-file soft limit to ask for, the connections it allows): ``wanted`` connections need one file
    descriptor each plus ``reserved``; the soft limit is raised as far as the hard limit allows, and when that
    is not enough the pool shrinks rather than ``accept`` failing for want of descriptors."""
    needed = wanted + reserved
    if soft == unlimited or soft >= needed:
        return soft, wanted
    new_soft = needed if hard == unlimited else min(needed, hard)
    return new_soft, max(1, min(wanted, new_soft - reserved))


def fit_connections_to_file_limit(wanted: int) -> int:
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to adjust
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_soft, capacity = connection_capacity(wanted, soft, hard, unlimited=resource.RLIM_INFINITY)
    if new_soft != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        except (ValueError, OSError):
            capacity = max(1, min(wanted, soft - FILE_DESCRIPTORS_RESERVED))
    if capacity < wanted:
        log.warning("GATEWAY_MAX_CONNECTIONS is %d but the open-file limit (ulimit -n) allows %d connections; "
                    "serving at most %d", wanted, capacity, capacity)
    return capacity


class DeadlineInput(wsgi.Input):
    """eventlet's request body, every read of which must end by the request's body deadline (eventlet also
    reads through it to skip a body nobody read before the next request on the connection)."""

    def __init__(self, original: wsgi.Input, deadline: float, on_expiry):
        super().__init__(original.rfile, original.content_length, original._sock, wfile=original.wfile,
                         wfile_line=original.wfile_line, chunked_input=original.chunked_input)
        self.deadline = deadline  # time.monotonic() by which the whole body must be in
        self._on_expiry = on_expiry

    def _before_deadline(self, read, *args):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._on_expiry()
            raise BodyDeadlinePassed()
        try:
            with eventlet.Timeout(remaining, BodyDeadlinePassed):
                return read(*args)
        except BodyDeadlinePassed:
            self._on_expiry()
            raise

    def read(self, length=None):
        return self._before_deadline(super().read, length)

    def readline(self, size=None):
        return self._before_deadline(super().readline, size)

    def readlines(self, hint=None):
        return self._before_deadline(super().readlines, hint)

    def discard(self, buffer_size=16 << 10):
        # an unread body is skipped only until the deadline; then the connection closes instead (on_expiry)
        try:
            super().discard(buffer_size)
        except BodyDeadlinePassed:
            pass


class DeadlineProtocol(HttpOnlyProtocol):
    """One connection: each request's line and headers under the header deadline, its body under the body
    deadline; when one passes the connection is closed, after a ``408`` if part of a request had come."""

    def handle_one_request(self):
        self._request_started = False
        self._header_timer = eventlet.Timeout(self.server.deadlines.header_seconds)
        try:
            super().handle_one_request()
        except eventlet.Timeout as expired:
            if expired is not self._header_timer:
                raise
            self.close_connection = 1
            # an idle kept-alive connection is just closed: a 408 there could be read as the answer to the
            # client's next request
            if self._request_started:
                self._send_timeout()
        finally:
            self._header_timer.cancel()

    def _read_request_line(self):
        if not self.rfile.closed:
            try:
                self._request_started = bool(self.rfile.peek(1))  # waits for the first byte (or the end)
            except OSError:
                pass  # eventlet's own read below meets the same error and handles it
        return super()._read_request_line()

    def get_environ(self):
        # the headers are in: their deadline is met, the body's starts
        self._header_timer.cancel()
        environ = super().get_environ()
        body = DeadlineInput(environ["eventlet.input"], time.monotonic() + self.server.deadlines.body_seconds,
                             on_expiry=self._close_after_this_request)
        environ["wsgi.input"] = environ["eventlet.input"] = body
        return environ

    def _close_after_this_request(self):
        self.close_connection = 1

    # a request that cannot be parsed is refused by Python's BaseHTTPRequestHandler itself: in JSON, like
    # every other error, instead of its HTML page
    error_content_type = "application/json"
    error_message_format = ('{"error": {"code": "malformed_request", "message": "The request line or headers could '
                            'not be read (%(code)d)."}}')

    def log_message(self, format, *args):
        # Python's BaseHTTPRequestHandler writes a malformed request's line, path and all, to stderr (the process
        # log), and a path may hold a report code: say only that one was refused, and with which status.
        status = next((str(arg) for arg in args if str(arg).isdigit() and len(str(arg)) == 3), "?")
        log.info("a malformed request was refused (%s)", status)

    def _send_timeout(self):
        body = TIMEOUT_BODY.encode()
        head = ("HTTP/1.1 408 Request Timeout\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in JSON_HEADERS.items())
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            self.wfile.write(head.encode() + body)
            self.wfile.flush()
        except OSError:
            pass  # the client is gone: nobody to tell


class DeadlineWebServer(WebServer):
    """nameko's ``WebServer`` (a shared extension: every ``@http`` entrypoint of the gateway uses this one)
    with ``DeadlineProtocol`` and at most ``GATEWAY_MAX_CONNECTIONS`` connections at once."""

    def setup(self):
        self.deadlines = ReadDeadlines.from_config(self.container.config)
        super().setup()

    def start(self):
        if not self._starting:
            self._starting = True
            self._connection_slots = Semaphore(fit_connections_to_file_limit(self.deadlines.max_connections))
            # a burst of connections waits in the kernel rather than being refused (Linux caps it at somaxconn)
            self._sock = eventlet.listen(self.bind_addr, backlog=LISTEN_BACKLOG)
            self._sock.settimeout(None)  # work around https://github.com/celery/kombu/issues/838, as nameko does
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def get_wsgi_server(self, sock, wsgi_app, protocol=DeadlineProtocol, debug=False):
        server = super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)
        server.deadlines = self.deadlines
        # each send must make progress within this: a client that stops reading its answer is let go
        server.socket_timeout = max(self.deadlines.header_seconds, self.deadlines.body_seconds)
        return server

    def run(self):
        while self._is_accepting:
            self._connection_slots.acquire()
            try:
                sock, address = self._sock.accept()
            except OSError as error:
                self._connection_slots.release()
                if error.errno in ACCEPT_ERRORS_TO_WAIT_OUT:
                    log.warning("cannot accept a connection (%s); retrying in a moment", errno.errorcode.get(
                        error.errno, error.errno))
                    eventlet.sleep(0.1)
                    continue
                if error.errno in ACCEPT_ERRORS_TO_SKIP:
                    continue
                raise
            sock.settimeout(self._serv.socket_timeout)
            self.container.spawn_managed_thread(partial(self._serve_connection, sock, address))

    def _serve_connection(self, sock, address):
        # nameko kills the whole service when one of its threads raises: one connection's trouble must not
        try:
            self.process_request(sock, address)
        except Exception:
            log.warning("a connection failed", exc_info=True)
            sock.close()
        finally:
            self._connection_slots.release()


class BodyNotReceived(Exception):
    """The body did not arrive whole in time: ``response`` is the answer, sent without taking a worker."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def buffer_body(request, limit: int) -> None:
    """Reads a body of at most ``limit`` bytes into memory before a worker is taken, within the body deadline;
    the handler then reads it from memory. A body declared larger is left where it is: the handler refuses it
    by its ``Content-Length``, or reads it itself (still within the deadline). So is a body without a
    ``Content-Length`` (chunked), which werkzeug shows the handler as empty.
    Raises ``BodyNotReceived`` (408, or 400 for a body cut short) when the body did not arrive whole."""
    declared = request.content_length
    if declared is None or declared > limit:
        return
    try:
        body = request.stream.read(declared)
    except BodyDeadlinePassed:
        raise BodyNotReceived(Response(TIMEOUT_BODY, status=408, headers=JSON_HEADERS)) from None
    except ClientDisconnected:  # werkzeug: the stream ended before anything came
        body = b""
    if declared is not None and len(body) < declared:
        raise BodyNotReceived(Response(INCOMPLETE_BODY, status=400, headers=JSON_HEADERS))
    request.stream = io.BytesIO(body)
