"""The gateway HTTP server's rules (gateway/http_server.py): its settings, how many connections the open-file
limit allows, and reading the body into memory before a worker is taken. The deadlines themselves are
proven against a running server in tests/integration/test_http_deadlines.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from credence_common.config import load_config
from gateway.http_server import (
    DEFAULT_BODY_DEADLINE_SECONDS,
    DEFAULT_HEADER_DEADLINE_SECONDS,
    DEFAULT_MAX_CONNECTIONS,
    BodyNotReceived,
    ReadDeadlines,
    buffer_body,
    connection_capacity,
)

GATEWAY_CONFIG = Path(__file__).resolve().parents[2] / "gateway" / "config.yml"


def test_the_settings_default_as_gateway_config_yml_says(monkeypatch):
    for name in ("GATEWAY_HEADER_DEADLINE_SECONDS", "GATEWAY_BODY_DEADLINE_SECONDS", "GATEWAY_MAX_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    from_file = ReadDeadlines.from_config(load_config(str(GATEWAY_CONFIG)))
    assert from_file == ReadDeadlines.from_config({}) == ReadDeadlines(
        DEFAULT_HEADER_DEADLINE_SECONDS, DEFAULT_BODY_DEADLINE_SECONDS, DEFAULT_MAX_CONNECTIONS)
    assert ReadDeadlines.from_config({"GATEWAY_HEADER_DEADLINE_SECONDS": "2.5", "GATEWAY_BODY_DEADLINE_SECONDS": 4,
                                      "GATEWAY_MAX_CONNECTIONS": "100"}) == ReadDeadlines(2.5, 4.0, 100)


@pytest.mark.parametrize("setting", [{"GATEWAY_HEADER_DEADLINE_SECONDS": 0}, {"GATEWAY_BODY_DEADLINE_SECONDS": -1},
                                     {"GATEWAY_MAX_CONNECTIONS": 0}])
def test_a_deadline_that_never_passes_or_an_empty_pool_is_refused_at_start(setting):
    with pytest.raises(ValueError, match="GATEWAY_"):
        ReadDeadlines.from_config(setting)


def test_the_open_file_limit_is_raised_for_the_pool_as_far_as_the_hard_limit_allows():
    # (wanted connections, soft limit, hard limit) -> (soft limit to ask for, connections served)
    assert connection_capacity(4096, soft=1024, hard=524288, reserved=256) == (4352, 4096)
    assert connection_capacity(4096, soft=65536, hard=65536, reserved=256) == (65536, 4096)
    assert connection_capacity(4096, soft=1024, hard=-1, reserved=256, unlimited=-1) == (4352, 4096)
    assert connection_capacity(4096, soft=-1, hard=-1, reserved=256, unlimited=-1) == (-1, 4096)
    # the hard limit is too low: the pool shrinks instead of accept() failing for want of descriptors
    assert connection_capacity(4096, soft=1024, hard=2048, reserved=256) == (2048, 1792)
    assert connection_capacity(4096, soft=100, hard=100, reserved=256) == (100, 1)


def request_with(body: bytes, content_length: int | None = None) -> Request:
    environ = EnvironBuilder(method="POST", path="/api/v1/candidates", input_stream=io.BytesIO(body)).get_environ()
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    return Request(environ)


def test_the_body_is_read_into_memory_and_the_handler_reads_it_whole():
    request = request_with(b'{"a": 1}', content_length=8)
    buffer_body(request, limit=100)
    request.environ["wsgi.input"] = None  # the connection is not read again
    assert request.stream.read(101) == b'{"a": 1}'


@pytest.mark.parametrize("content_length", [50, None])
def test_a_body_declared_over_the_limit_or_not_declared_is_left_to_the_handler(content_length):
    source = io.BytesIO(b"x" * 50)
    request = request_with(b"", content_length=content_length)
    request.environ["wsgi.input"] = source
    if content_length is None:
        request.environ.pop("CONTENT_LENGTH", None)
        request.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    buffer_body(request, limit=10)
    assert source.tell() == 0


def test_a_body_cut_short_is_refused_with_a_code():
    request = request_with(b"half", content_length=8)
    with pytest.raises(BodyNotReceived) as refusal:
        buffer_body(request, limit=100)
    assert refusal.value.response.status_code == 400
    assert json.loads(refusal.value.response.get_data())["error"]["code"] == "incomplete_body"
