"""One pure ASGI middleware for every request: request id, load shedding, timeout, metrics, faults.

Kept as a single layer on purpose: each layer on the hot path costs a coroutine and a send
wrapper, and the benchmark shows it. What it does, in order:
- `X-Request-ID`: the client's (when sane) or a new one, on every response; the server's own
  id for the prediction log is always generated (the client's is kept beside it).
- Load shedding: past `max_in_flight` requests in this worker, 503 with `Retry-After`, fast;
  health endpoints are always answered.
- `--request-timeout` is enforced where a request can wait (the batcher's queue and predict
  thread, see batching.py): 504, and the worker stays healthy.
- Metrics by route template, method and status; the access log when enabled.
- Anything unexpected is logged with its type and answered 500 without details.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from tabserve import logging as tlog
from tabserve.errors import OverloadedError, TabserveError
from tabserve.serving import metrics
from tabserve.serving.responses import Send, error_body, send_response
from tabserve.serving.routes import Endpoint, Receive

__all__ = ["ServingMiddleware"]

Scope = MutableMapping[str, Any]
ASGIApp = Any

_ALWAYS = frozenset({"/v2/health/live", "/v2/health/ready", "/ping", "/health", "/metrics"})
_MAX_ID = 128


def _sane(value: bytes) -> bool:
    return 0 < len(value) <= _MAX_ID and value.isascii() and all(32 < b < 127 for b in value)


def _exact_routes(app: ASGIApp) -> dict[str, Any]:
    """The router's routes to tabserve endpoints whose path has no parameter, by path."""
    exact: dict[str, Any] = {}
    for route in getattr(app, "routes", ()):
        path = getattr(route, "path", "")
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, Endpoint) and route.methods and "{" not in path:
            exact.setdefault(path, route)
    return exact


class ServingMiddleware:
    """Wraps the router: ids, in-flight bound, timeout, metrics and the last-resort 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        timeout: float,
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.access_log = access_log
        self.in_flight = 0
        self.serving: Any = None  # the ServingState, for tests and the app's owner
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)
        self.exact = _exact_routes(app)

    def new_id(self) -> str:
        """A request id unique across workers and restarts: random per process, then a counter."""
        return f"{self._prefix}{next(self._counter):08x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        server_id = self.new_id()
        client_id: str | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                if _sane(value):
                    client_id = value.decode("ascii")
                break
        scope["tabserve.request_id"] = server_id
        scope["tabserve.client_request_id"] = client_id
        id_header = (b"x-request-id", (client_id or server_id).encode("ascii"))
        if self.in_flight >= self.max_in_flight and scope["path"] not in _ALWAYS:
            await self._shed(send, id_header, scope, started)
            return
        state = [500, False]  # status, response started

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state[0] = message["status"]
                state[1] = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        self.in_flight += 1
        metrics.request_started()
        try:
            route = self.exact.get(scope["path"])
            if route is not None and scope["method"] in route.methods:
                # A path without parameters goes straight to its endpoint: the Router's walk
                # over every route's regex was ~7% of a lecture request's time in process.
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except TimeoutError:  # a timeout outside the predict (ModelService answers its own)
            if not state[1]:
                await self._fail(
                    send_with_id,
                    504,
                    "the prediction took longer than "
                    f"--request-timeout ({self.timeout:g} s): retry, or send fewer rows",
                )
        except HTTPException as error:  # raised by Starlette's StaticFiles (404, 405)
            if not state[1]:
                await self._fail(send_with_id, error.status_code, error.detail)
        except Exception as error:
            tlog.log_error("unhandled error", error, request_id=server_id, path=scope.get("path"))
            if not state[1]:
                await self._fail(send_with_id, 500, "internal error: the server logged it")
        finally:
            self.in_flight -= 1
            metrics.request_finished()
            self._observe(scope, state[0], started, client_id or server_id)

    async def _shed(
        self, send: Send, id_header: tuple[bytes, bytes], scope: Scope, started: float
    ) -> None:
        error = OverloadedError(
            f"the server is at its limit of {self.max_in_flight} requests in flight per worker: "
            "retry after a moment"
        )
        await send_response(
            send, 503, error_body(error), headers=[(b"retry-after", b"1"), id_header]
        )
        self._observe(scope, 503, started, id_header[1].decode())

    async def _fail(self, send: Send, status: int, message: str) -> None:
        error = TabserveError(message)
        await send_response(send, status, error_body(error))

    def _observe(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        endpoint = scope.get("endpoint")
        route = getattr(endpoint, "template", None) or ("static" if endpoint else "unmatched")
        seconds = time.perf_counter() - started
        metrics.observe_request(route, scope["method"], status, seconds)
        if self.access_log:
            params = scope.get("path_params") or {}
            served = scope.get("tabserve.served")  # the manifest that answered, when one did
            tlog.access(
                request_id=request_id,
                route=route,
                method=scope["method"],
                status=status,
                seconds=seconds,
                model=served.name if served is not None else params.get("name"),
                version=served.version if served is not None else params.get("version"),
            )
