"""The lecture's Flask contract, byte for byte: `GET /?sepal_length=7.7&...` -> `{"prediction":"2"}`.

The lecture's app read each feature with `float(request.args.get(name))` and answered with
Flask's `jsonify`: compact JSON plus a newline. Its two error bodies are JSON strings holding
a Python list repr. NaN and infinities pass Python's `float()`, but tabserve refuses them as
"not float" (the lecture's app would have crashed on them).
"""

from __future__ import annotations

import math
from urllib.parse import unquote_plus

import msgspec
import numpy as np

from tabserve.serving.validation import Schema, raise_details
from tabserve.types import Prediction

__all__ = ["CONTENT_TYPE", "LectureError", "decode", "encode", "parse_query"]

CONTENT_TYPE = b"application/json; charset=UTF-8"


class LectureError(Exception):
    """A 422 in the lecture's own format: the body is a JSON string plus a newline."""

    def __init__(self, body: bytes, reason: str) -> None:
        super().__init__(body.decode("utf-8", "replace"))
        self.body = body
        self.reason = reason


def parse_query(query: bytes) -> dict[str, str]:
    """Query arguments, first value of each name (as Flask's `request.args.get`)."""
    args: dict[str, str] = {}
    if not query:
        return args
    for part in query.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        k = key.decode("utf-8", "replace")
        v = value.decode("utf-8", "replace")
        if b"%" in part or b"+" in part:
            k = unquote_plus(k)
            v = unquote_plus(v)
        if k not in args:
            args[k] = v
    return args


def _message(text: str, reason: str) -> LectureError:
    return LectureError(msgspec.json.encode(text) + b"\n", reason)


def _plain_row(schema: Schema, query: bytes) -> np.ndarray | None:
    """The row of a plain ASCII query of finite numbers, else None (the full path decides)."""
    args: dict[bytes, bytes] = {}
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key not in args:
            args[key] = value
    values = []
    try:
        for name in schema.names:
            number = float(args[name.encode()])  # float() reads ASCII bytes as it reads str
            if not math.isfinite(number):
                return None
            values.append(number)
    except (KeyError, ValueError):
        return None
    return np.array([values], dtype=np.float64)


def decode(schema: Schema, query: bytes) -> np.ndarray:
    """One row from the query arguments named after the features (extra arguments ignored)."""
    # The common request (ASCII, no escapes, every feature a finite number) skips the str
    # decoding of every argument; anything else, errors included, takes the full path.
    if schema.all_numeric and query.isascii() and b"%" not in query and b"+" not in query:
        plain = _plain_row(schema, query)
        if plain is not None:
            return plain
    args = parse_query(query)
    missing = [name for name in schema.names if name not in args]
    if missing:
        raise _message(f"argument(s) missing: {missing!r}", "missing_feature")
    if schema.all_numeric:
        values = []
        not_float = []
        for name in schema.names:
            try:
                value = float(args[name])
            except ValueError:
                not_float.append(name)
                continue
            if not math.isfinite(value):
                not_float.append(name)
                continue
            values.append(value)
        if not_float:
            raise _message(f"argument(s) not float: {not_float!r}", "type")
        return np.array([values], dtype=np.float64)
    row: list[object] = []
    not_float = []
    details: list[dict[str, object]] = []
    for j, (name, feature) in enumerate(zip(schema.names, schema.features, strict=True)):
        text = args[name]
        if feature.kind == "number":
            try:
                number = float(text)
            except ValueError:
                number = math.inf
            if not math.isfinite(number):
                not_float.append(name)
                continue
            row.append(number)
        else:
            row.append(schema.cell(j, text, ("query", name), details))
    if not_float:
        raise _message(f"argument(s) not float: {not_float!r}", "type")
    raise_details(details)
    out = np.empty((1, len(row)), dtype=object)
    out[0, :] = row
    return out


_BODIES: dict[str, bytes] = {}  # a string label -> its answer (a classifier has few labels)
_MAX_BODIES = 256


def encode(prediction: Prediction) -> bytes:
    """`{"prediction":"<label>"}` and a newline, exactly as jsonify writes it."""
    label = prediction.labels[0]
    # Only string labels are kept: numbers that compare equal can print differently (1, 1.0,
    # True; 0.0 and -0.0).
    if type(label) is np.str_ or type(label) is str:
        body = _BODIES.get(label)
        if body is None:
            body = _body(str(label))
            if len(_BODIES) < _MAX_BODIES:
                _BODIES[label] = body
        return body
    return _body(str(label.item() if isinstance(label, np.generic) else label))


def _body(text: str) -> bytes:
    return b'{"prediction":' + msgspec.json.encode(text) + b"}\n"
