"""Request bodies: read within --max-body-bytes, decode JSON strictly. No web framework here.

msgspec parses JSON (fast, refuses invalid UTF-8, NaN and integers it cannot hold); two
checks it does not make are added cheaply: nesting deeper than 64 levels and duplicate keys
(both 400). Each runs only when the body could have the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import numpy as np

from tabserve.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError

__all__ = ["MAX_DEPTH", "decode_json", "header", "media_type", "read_body"]

MAX_DEPTH = 64

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_decoder = msgspec.json.Decoder()
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SPACE_AFTER_STRING = (b'" ', b'"\n', b'"\t', b'"\r')


def header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def media_type(scope: MutableMapping[str, Any]) -> str | None:
    """The request's Content-Type without parameters, lower case; None when absent."""
    value = header(scope, b"content-type")
    if value is None:
        return None
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def too_large(limit: int) -> PayloadTooLargeError:
    """The 413 error for a body over the limit."""
    return PayloadTooLargeError(
        f"the request body is larger than {limit} bytes (--max-body-bytes): send fewer rows per "
        "request",
        [{"loc": ["body"], "msg": "too large"}],
    )


async def read_body(scope: MutableMapping[str, Any], receive: Receive, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequestError(
                "Content-Length is not a number",
                [{"loc": ["header", "Content-Length"], "msg": "invalid"}],
            ) from None
        if declared > limit:
            raise too_large(limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequestError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _bad_json(message: str) -> BadRequestError:
    return BadRequestError(
        f"the body is not valid JSON: {message}", [{"loc": ["body"], "msg": message}]
    )


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; 400 for malformed JSON, invalid UTF-8, deep nesting or duplicate keys."""
    if not body:
        raise _bad_json("the body is empty")
    opens = body.count(b"[") + body.count(b"{")
    if opens > MAX_DEPTH and _depth(body) > MAX_DEPTH:
        raise _bad_json(f"nesting deeper than {MAX_DEPTH} levels")
    try:
        value = _decoder.decode(body)
    except msgspec.ValidationError as error:  # a number it cannot hold
        raise _bad_json(str(error).split(" - at ", 1)[0].lower()) from None
    except msgspec.DecodeError as error:
        raise _bad_json(str(error)) from None
    except RecursionError:
        raise _bad_json(f"nesting deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise _bad_json("the body is not valid UTF-8") from None
    if b"{" in body and _has_duplicate_keys(body, value):
        raise _bad_json("an object has the same key twice")
    return value


def _depth(body: bytes) -> int:
    """The deepest bracket nesting; string contents are ignored when they could matter."""
    codes = np.frombuffer(body, dtype=np.uint8)
    step = (codes == 91).astype(np.int32) + (codes == 123) - (codes == 93) - (codes == 125)
    deepest = int(np.cumsum(step).max(initial=0))
    if deepest > MAX_DEPTH and b'"' in body:
        # Brackets inside strings are not nesting: measure again without them.
        stripped = _STRING.sub(b'""', body)
        if stripped != body:
            return _depth(stripped)
    return deepest


def _count_keys(value: Any) -> int:
    """Keys of every object reachable through containers; may undercount (lists of scalars first)."""
    kind = type(value)
    if kind is dict:
        n = len(value)
        for item in value.values():
            if type(item) in (dict, list):
                n += _count_keys(item)
        return n
    if kind is list and value and type(value[0]) in (dict, list):
        return sum(_count_keys(item) for item in value if type(item) in (dict, list))
    return 0


def _has_duplicate_keys(body: bytes, value: Any) -> bool:
    """True when some object repeats a key (msgspec keeps the last one silently).

    Cheap test first: each key in compact JSON ends with `":`, so the text holds at least as
    many `":` as the decoded objects hold keys, and exactly as many when no key repeats and no
    string contains `":`. Any difference (or whitespace after a string) takes the exact path.
    """
    if not any(p in body for p in _SPACE_AFTER_STRING) and body.count(b'":') == _count_keys(value):
        return False
    return _exact_duplicates(body)


def _exact_duplicates(body: bytes) -> bool:
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        result = dict(items)
        if len(result) != len(items):
            found = True
        return result

    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False  # msgspec accepted it; the stdlib's stricter limits are not ours
    return found


def require_json(scope: MutableMapping[str, Any], *, allow_missing: bool = False) -> None:
    """415 unless the Content-Type is JSON (or absent, where the protocol's clients omit it)."""
    kind = media_type(scope)
    if kind is None:
        if allow_missing:
            return
        raise UnsupportedMediaError(
            "the request has no Content-Type: send Content-Type: application/json",
            [{"loc": ["header", "Content-Type"], "msg": "missing"}],
        )
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        return
    raise UnsupportedMediaError(
        f"Content-Type {kind!r} is not accepted here: send application/json",
        [{"loc": ["header", "Content-Type"], "msg": "unsupported media type"}],
    )
