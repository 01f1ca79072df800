"""No path in the gateway's log lines (gateway/logged_paths.py): eventlet's request line is dropped, and every
request target in its other lines is replaced by the rule of the route it reaches."""

from __future__ import annotations

import logging

import pytest

from gateway.logged_paths import UNROUTED, PathFilter, PathRedactor, install

RULES = ["/r/<report_code>", "/verify", "/api/v1/payment-orders/<order_number>", "/api/v1/fees/<fee_code>",
         "/", "/<path:rest>"]
CODE = "Q7RZ4K2M9XWB3T5V"


@pytest.fixture
def redactor() -> PathRedactor:
    return PathRedactor(RULES, catch_all=["/", "/<path:rest>"])


@pytest.mark.parametrize("target, shown", [
    (f"/r/{CODE}", "/r/<report_code>"),
    (f"/r/{CODE}?utm=1", "/r/<report_code>"),
    ("/api/v1/payment-orders/P202612060001?order_number=P202612060001", "/api/v1/payment-orders/<order_number>"),
    ("/verify", "/verify"),
    (f"http://example.com/r/{CODE}", "/r/<report_code>"),  # a request line in absolute form
    (f"/r/{CODE}/", UNROUTED),  # caught by the catch-all: nothing of it is known to be harmless
    (f"//r/{CODE}", UNROUTED),  # werkzeug would redirect
    ("/", UNROUTED),
])
def test_a_target_is_shown_as_its_rule(redactor, target, shown):
    assert redactor.path(target) == shown


def test_every_request_target_in_a_text_is_replaced(redactor):
    text = (f'chunked encoding error while discarding request body. client=127.0.0.1 request="GET /r/{CODE} '
            f'HTTP/1.1" error="x"; then POST /api/v1/payment-orders/P1?order_number=P1 and PROPFIND /x/{CODE}')
    redacted = redactor.text(text)
    assert CODE not in redacted and "P1" not in redacted
    assert 'request="GET /r/<report_code> HTTP/1.1"' in redacted
    assert "POST /api/v1/payment-orders/<order_number> and" in redacted
    assert f"PROPFIND {UNROUTED}" in redacted


def eventlet_record(level: int, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord("nameko.web.server", level, __file__, 1, message, args, None)


def test_eventlets_request_line_is_dropped_and_its_other_lines_redacted(redactor):
    path_filter = PathFilter(redactor)
    request_line = eventlet_record(logging.INFO, f'127.0.0.1 - - [06/Dec/2026 07:01:02] "GET /r/{CODE} HTTP/1.1" '
                                                 "200 1234 0.012345")
    assert path_filter.filter(request_line) is False
    error = eventlet_record(logging.ERROR, 'I/O error while discarding request body. client=%s request="%s"',
                            "127.0.0.1", f"PUT /r/{CODE} HTTP/1.1")
    assert path_filter.filter(error) is True
    assert CODE not in error.getMessage() and "PUT /r/<report_code> HTTP/1.1" in error.getMessage()
    traceback = eventlet_record(logging.INFO, f"Traceback (most recent call last):\n  GET /r/{CODE}\nValueError")
    assert path_filter.filter(traceback) is True and CODE not in traceback.getMessage()


def test_installing_twice_leaves_one_filter(redactor):
    logger = logging.getLogger("tests.logged_paths")
    install(logger, redactor)
    install(logger, redactor)
    assert sum(isinstance(f, PathFilter) for f in logger.filters) == 1
    logger.filters.clear()
