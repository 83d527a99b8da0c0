"""Structured logs: JSON lines with request context, access lines without feature values."""

from __future__ import annotations

import io
import json
import logging

import structlog

from tabserve import logging as tlog


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_access_line_has_context_and_no_feature_values() -> None:
    out = io.StringIO()
    tlog.configure("info", "json", stream=out)
    tlog.bind_request("req-1", "iris", 3)
    tlog.access(
        request_id="req-1",
        route="/",
        method="GET",
        status=200,
        seconds=0.00025,
        model="iris",
        version=3,
    )
    tlog.clear_request()
    (line,) = lines(out)
    assert line["request_id"] == "req-1"
    assert (line["route"], line["status"], line["model"], line["version"]) == (
        "/",
        200,
        "iris",
        "3",
    )
    assert line["latency_ms"] == 0.25
    assert line["level"] == "info"
    assert "sepal_length" not in json.dumps(line)


def test_errors_name_the_exception_type_without_locals() -> None:
    out = io.StringIO()
    tlog.configure("info", "json", stream=out)
    # A local that must not reach the log. Four digits before the point: the timestamp's
    # seconds ("01:45:37.795107") held "7.7" once, so a value like that matched by chance.
    secret_feature_value = 4321.5
    try:
        raise ZeroDivisionError(f"boom {secret_feature_value / 4321.5:.0f}")
    except ZeroDivisionError as error:
        tlog.log_error("predict failed", error, model="iris")
    (line,) = lines(out)
    assert line["exc_type"] == "ZeroDivisionError"
    assert line["event"] == "predict failed"
    assert str(secret_feature_value) not in out.getvalue()


def test_level_filters_and_stdlib_loggers_share_the_format() -> None:
    out = io.StringIO()
    tlog.configure("warning", "json", stream=out)
    structlog.get_logger().info("hidden")
    logging.getLogger("uvicorn.error").warning("port %d in use", 8000)
    (line,) = lines(out)
    assert line["event"] == "port 8000 in use"
    assert line["level"] == "warning"


def test_console_format_is_not_json() -> None:
    out = io.StringIO()
    tlog.configure("debug", "console", stream=out)
    structlog.get_logger().debug("starting", workers=2)
    assert "starting" in out.getvalue()
    assert not out.getvalue().lstrip().startswith("{")
