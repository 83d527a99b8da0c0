"""The ceiling: a raw ASGI app that answers every request with the lecture's constant body.

Served by `uvicorn ceiling:app --loop uvloop --http httptools` with 1 worker, it measures what
HTTP on this machine costs with no framework and no model: the most any Python server can do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY = b'{"prediction":"2"}\n'
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json; charset=UTF-8"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
_BODY = {"type": "http.response.body", "body": BODY}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer any HTTP request with the constant body; ignore lifespan events."""
    if scope["type"] != "http":
        return
    await send(_START)
    await send(_BODY)
