"""No path in a log line: a path may hold a secret (a report code in ``/r/<report_code>``, an order number in
``/api/v1/payment-orders/<order_number>``, a query such as ``?order_number=``).

The gateway's access log (``gateway.access``) names each request by its route's rule. eventlet's WSGI server,
which nameko hands the logger ``nameko.web.server``, writes a request line of its own with the full path, and
puts the request line into its error lines too. ``PathFilter`` on that logger drops eventlet's request line
(the access log has said it, without the path) and, in every other line, replaces each request target with the
rule it matches: ``GET /r/ABCD-1234 HTTP/1.1`` becomes ``GET /r/<report_code> HTTP/1.1``, a path that matches
no rule becomes ``[unrouted path]``, and the query string goes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

UNROUTED = "[unrouted path]"
# A request target after an HTTP method, as in a request line: origin form (/path?query) or absolute form.
REQUEST_TARGET = re.compile(r"\b(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|CONNECT|[A-Z]{3,10}) (/\S*|https?://\S+)")
# eventlet's request line: '<client> - - [<date>] "<request line>" <status> <length> <seconds>'
EVENTLET_REQUEST_LINE = re.compile(r'^\S+ - - \[[^\]]*\] ".*" \d{3} ')


class PathRedactor:
    """Maps a request target to the rule of the route it reaches (parameters stay as their names)."""

    def __init__(self, rules: Iterable[str], catch_all: Iterable[str] = ()):
        # any method: only the shape of the path matters here
        self._adapter = Map([Rule(rule, endpoint=rule) for rule in set(rules)]).bind("gateway")
        self._catch_all = frozenset(catch_all)

    def path(self, target: str) -> str:
        try:
            rule, _values = self._adapter.match(urlsplit(target).path)
        except HTTPException:  # no rule, or a redirect (a doubled slash): nothing of it may be shown
            return UNROUTED
        return UNROUTED if rule in self._catch_all else rule

    def text(self, text: str) -> str:
        return REQUEST_TARGET.sub(lambda match: f"{match[1]} {self.path(match[2])}", text)


class PathFilter(logging.Filter):
    """For eventlet's logger: drops its request line, and redacts request targets in its other lines."""

    def __init__(self, redactor: PathRedactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno <= logging.INFO and EVENTLET_REQUEST_LINE.match(message):
            return False
        record.msg, record.args = self.redactor.text(message), ()
        return True


def install(logger: logging.Logger, redactor: PathRedactor) -> None:
    """Once per process, whatever the number of containers (tests may run more than one)."""
    for existing in list(logger.filters):
        if isinstance(existing, PathFilter):
            logger.removeFilter(existing)
    logger.addFilter(PathFilter(redactor))
