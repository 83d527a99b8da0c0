"""Structured logs: JSON on stdout (or console format), request and model context in contextvars.

`configure(level, fmt)` once per process (the CLI, and each server worker after the fork). Then
`get_logger()` anywhere; `bind_request(...)` at the start of a request puts the request id and
model version on every line logged while handling it; `access(...)` writes the access line.
Standard-library loggers (granian, uvicorn) go through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import msgspec
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars

LogFormat = Literal["json", "console"]
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_encoder = msgspec.json.Encoder(enc_hook=str)


def _dumps(event: Any, **_: Any) -> str:
    # msgspec is fast and never raises on odd values: enc_hook falls back to str().
    return _encoder.encode(event).decode()


def _add_exception_type(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Name the exception class on error lines, so logs can be grouped by it."""
    exc = event.get("exc_info")
    if exc:
        if exc is True:
            exc = sys.exc_info()
        if isinstance(exc, BaseException):
            event.setdefault("exc_type", type(exc).__name__)
        elif isinstance(exc, tuple) and exc[0] is not None:
            event.setdefault("exc_type", exc[0].__name__)
    return event


def _logger_name(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Render get_logger(name)'s name under the same key as standard-library loggers."""
    name = event.pop("logger_name", None)
    if name is not None:
        event.setdefault("logger", name)
    return event


def _shared_processors() -> list[Any]:
    return [
        _logger_name,
        merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_exception_type,
    ]


def _renderer(fmt: LogFormat) -> list[Any]:
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=False)]
    # Tracebacks without local variables: locals may hold feature values.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    return [tracebacks, structlog.processors.JSONRenderer(serializer=_dumps)]


def configure(level: str = "info", fmt: LogFormat = "json", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library to write one rendered line per event."""
    out = stream if stream is not None else sys.stdout
    numeric = LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            *_renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    # granian, uvicorn and libraries log through the standard library: same format, same stream.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderer(fmt)],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("_granian", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Alembic announces every migration context at info: noise on each registry open.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # Access lines come from access() below, never from the servers' own access loggers.
    for name in ("granian.access", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = False
        lg.disabled = True


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; `name` is added as `logger` when given."""
    # An initial value, not .bind(): binding a lazy proxy fixes the configuration at import
    # time, before configure() ran (the master's lines came out in the default format).
    # `logger` is wrap_logger's own parameter name, so the name travels as `logger_name`.
    return structlog.get_logger(logger_name=name) if name else structlog.get_logger()


def bind_request(
    request_id: str, model: str | None = None, version: int | str | None = None
) -> None:
    """Put the request id (and model/version once known) on every line of this request."""
    clear_contextvars()
    if model is None:
        bind_contextvars(request_id=request_id)
    else:
        bind_contextvars(request_id=request_id, model=model, version=str(version))


def bind_model(model: str, version: int | str) -> None:
    """Add the model and version serving this request to the log context."""
    bind_contextvars(model=model, version=str(version))


def clear_request() -> None:
    """Forget the request context (end of request)."""
    clear_contextvars()


def access(
    *,
    request_id: str,
    route: str,
    method: str,
    status: int,
    seconds: float,
    model: str | None = None,
    version: int | str | None = None,
) -> None:
    """One access line: request id, route template, status, latency; never feature values."""
    structlog.get_logger().info(
        "request",
        request_id=request_id,
        route=route,
        method=method,
        status=status,
        latency_ms=round(seconds * 1000, 3),
        model=model,
        version=None if version is None else str(version),
    )


def log_error(event: str, error: BaseException, **fields: Any) -> None:
    """An error line naming the exception type, with its traceback as structured data."""
    structlog.get_logger().error(event, exc_info=error, **fields)
