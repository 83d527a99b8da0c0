"""Raw ASGI responses: the few bytes every handler sends, without a framework object per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import msgspec

from tabserve.errors import RequestError, TabserveError

__all__ = ["JSON", "error_body", "send_error", "send_response"]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

JSON = b"application/json"
_encode = msgspec.json.Encoder().encode


def error_body(error: TabserveError) -> bytes:
    """`{"error": message, "details": [...]}` for any tabserve error."""
    details = error.details if isinstance(error, RequestError) else []
    return _encode({"error": error.message, "details": details})


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: Headers = (),
) -> None:
    """Send a complete response: status, Content-Type, Content-Length, extra headers, body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: TabserveError, headers: Headers = ()) -> None:
    """Answer a tabserve error with its status and JSON body."""
    await send_response(send, int(error.status), error_body(error), JSON, headers)


def encode(value: Any) -> bytes:
    """JSON bytes for a response body."""
    return _encode(value)
