"""Structured logs and correlation ids (credence_common/observability/logs.py), without a broker or a database."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace

import pytest

from credence_common.contracts.envelope import make_envelope
from credence_common.contracts.events import CertificateIssuedV1 as CertificateIssued
from credence_common.observability import logs


@pytest.fixture(autouse=True)
def no_correlation_id_left_behind():
    logs.set_correlation_id(None)
    yield
    logs.set_correlation_id(None)


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("services.scoring.usecases", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_json_line_carries_service_level_logger_message_and_correlation_id():
    logs.set_correlation_id("req-42")
    line = json.loads(logs.JsonFormatter("scoring").format(record("imported %d rows for %s", 3, "张三")))
    assert line["service"] == "scoring" and line["level"] == "WARNING"
    assert line["logger"] == "services.scoring.usecases"
    assert line["message"] == "imported 3 rows for 张三"
    assert line["correlation_id"] == "req-42"
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_a_line_outside_any_request_has_no_correlation_id():
    assert "correlation_id" not in json.loads(logs.JsonFormatter("scoring").format(record("tick")))


def test_a_traceback_stays_inside_one_json_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    text = logs.JsonFormatter("payments").format(record("failed", exc_info=exc_info))
    assert "\n" not in text
    assert "RuntimeError: boom" in json.loads(text)["exception"]


def test_text_format_appends_the_correlation_id():
    logs.set_correlation_id("abc")
    assert logs.TextFormatter().format(record("hello")).endswith("hello [abc]")


@pytest.mark.parametrize("value, accepted", [
    ("5f0c2a9e4b7d4e21a3c8d6f1b2e4a7c9", True),
    ("lb-1:trace.7", True),
    ("", False),
    ("x" * 65, False),
    ("has space", False),
    ("line\nbreak", False),
    ("trailing\n", False),
    ('quote"', False),
    (None, False),
    (42, False),
])
def test_only_sane_correlation_ids_are_taken_from_callers(value, accepted):
    assert logs.sane(value) == (value if accepted else None)


def test_log_format_defaults_to_json_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert logs.log_format({}) == "json"
    assert logs.log_format({"LOG_FORMAT": "TEXT"}) == "text"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        logs.log_format({})


def worker(context_data: dict, *args) -> SimpleNamespace:
    return SimpleNamespace(context_data=context_data, args=args)


def test_a_worker_takes_the_id_its_rpc_headers_carry_and_passes_it_on():
    ctx = worker({"correlation_id": "from-gateway"})
    logs.CorrelationContext().worker_setup(ctx)
    assert logs.current_correlation_id() == "from-gateway"
    assert ctx.context_data["correlation_id"] == "from-gateway"
    logs.CorrelationContext().worker_teardown(ctx)
    assert logs.current_correlation_id() is None


def test_an_event_handler_takes_the_id_in_the_envelope():
    ctx = worker({}, {"id": "e1", "correlationid": "caused-by-req-7", "data": {}})
    logs.CorrelationContext().worker_setup(ctx)
    assert logs.current_correlation_id() == "caused-by-req-7"
    assert ctx.context_data["correlation_id"] == "caused-by-req-7"  # and hands it to the RPCs it makes


def test_a_batch_handler_takes_the_first_events_id():
    ctx = worker({}, [{"correlationid": "first"}, {"correlationid": "second"}])
    logs.CorrelationContext().worker_setup(ctx)
    assert logs.current_correlation_id() == "first"


def test_a_timer_or_an_insane_header_gets_a_new_id():
    timer = worker({})
    logs.CorrelationContext().worker_setup(timer)
    assert len(logs.current_correlation_id()) == 32
    forged = worker({"correlation_id": "evil\nline"})
    logs.CorrelationContext().worker_setup(forged)
    assert logs.current_correlation_id() not in ("evil\nline", timer.context_data["correlation_id"])


def test_an_event_carries_the_correlation_id_of_the_work_that_caused_it():
    payload = CertificateIssued.model_validate(example_payload(CertificateIssued))
    with logs.correlation_scope("req-9"):
        inside = make_envelope(payload)
    outside = make_envelope(payload)
    assert json.loads(inside.model_dump_json())["correlationid"] == "req-9"
    assert len(json.loads(outside.model_dump_json())["correlationid"]) == 32


def test_correlation_scope_restores_the_previous_id():
    logs.set_correlation_id("outer")
    with logs.correlation_scope("inner") as chosen:
        assert chosen == logs.current_correlation_id() == "inner"
    assert logs.current_correlation_id() == "outer"


def test_read_json_log_keeps_lines_that_are_not_json():
    text = json.dumps({"message": "a", "correlation_id": "x"}) + "\nTraceback (most recent call last):\n"
    assert logs.read_json_log(text) == [{"message": "a", "correlation_id": "x"},
                                        {"message": "Traceback (most recent call last):"}]


def example_payload(model) -> dict:
    from credence_common.contracts.docs import example

    return example(model)["data"]


def test_warnings_and_crashes_become_json_lines(capsys):
    import warnings

    previous_hook = sys.excepthook
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure_logging("gateway", fmt="json")
        warnings.warn("the key is short", UserWarning, stacklevel=1)
        try:
            raise KeyError("lost")
        except KeyError:
            sys.excepthook(*sys.exc_info())
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        logging.captureWarnings(False)
        sys.excepthook = previous_hook
        root.handlers[:], root.level = saved
    assert any("the key is short" in line["message"] and line["logger"] == "py.warnings" for line in lines)
    crash = [line for line in lines if line["level"] == "CRITICAL"]
    assert crash and "KeyError" in crash[0]["exception"] and crash[0]["service"] == "gateway"

