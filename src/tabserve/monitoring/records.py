"""The prediction log's record format: what a worker spools and what a sink stores.

A spool frame holds the requests of one flush, in one of two forms:
- requests of up to `PREPARED_ROWS` rows (the common case) as their table rows: the worker
  writes each row's `LogRow`, `input` and `output` JSON included, exactly as the table stores
  it, and keeps the live inputs per model version as float64 bytes for the drift window
  (`DriftRows`). The shipper decodes those rows straight into the tuples the sink inserts: no
  per-row Python work. For a one-row request this costs the worker ~0.6 us more and spares
  the shipper ~8 us of decoding into nested lists and building the JSON (bench/log_rows.py).
- larger requests (and every frame written before the first form existed) as a
  `RequestRecord`, which the shipper explodes into n rows. A 10,000-row request would cost the
  event loop ~15 ms of JSON; the shipper does it instead. Float64 inputs and probabilities
  travel as their bytes (`request_record`): turning 10,000 rows into lists took the event loop
  ~7 ms, the bytes ~0.2 ms; older records hold lists, and both decode to the same rows.
A frame is `FRAME_V2` + msgpack `[rows, drift rows, request records]`; a frame without that
first byte is the older form, a msgpack array of request records. Manifests travel beside the
spool as `manifests/NAME-VERSION.json`, so the shipper knows feature names and training
histograms without the registry.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np

from tabserve.types import Manifest, Prediction

_msgpack_encode = msgspec.msgpack.Encoder().encode
_json = msgspec.json.Encoder(enc_hook=str)

# The first byte of a frame of the current form: an older frame, a msgpack array, starts with
# 0x90-0x9f, 0xdc or 0xdd.
FRAME_V2 = b"\x02"
PREPARED_ROWS = 64  # requests up to this many rows are spooled as their table rows


class RequestRecord(NamedTuple):
    """One served request as spooled: inputs are row lists, or sha256 hex digests when hashed."""

    request_id: str
    client_request_id: str | None
    ts: float  # unix time the prediction was made
    model: str
    version: int
    role: str  # "live" or "shadow"
    latency_s: float
    # Per row: list of feature values, or a sha256 hex string; or every row's float64 values,
    # row-major, as bytes.
    inputs: list[Any] | bytes
    outputs: list[Any]  # per row: the predicted label or value
    proba: list[list[float]] | bytes | None  # bytes: float64, row-major


class LogRow(NamedTuple):
    """One row of the prediction-log table."""

    request_id: str
    row: int
    client_request_id: str | None
    ts: float
    model: str
    version: int
    role: str
    input: str  # JSON: {feature: value}, or {"sha256": digest} when features are hashed
    output: str  # JSON: {"label": ..., "proba": [...]}
    latency_ms: float


class DriftRows(NamedTuple):
    """Live input rows of one model version, from the prepared requests of one flush."""

    model: str
    version: int
    # Float64 bytes, row-major, for all-numeric models; lists of values for the others.
    values: bytes | list[list[Any]]


# Straight into records: msgspec checks each field's type as it decodes.
_v1_decode = msgspec.msgpack.Decoder(list[RequestRecord]).decode
_v2_decode = msgspec.msgpack.Decoder(
    tuple[list[LogRow], list[DriftRows], list[RequestRecord]]
).decode


def hash_row(values: list[Any]) -> str:
    """The sha256 stored instead of a row's feature values (prediction_log_hash_features)."""
    return hashlib.sha256(_json.encode(values)).hexdigest()


def input_json(values: Any, names: Sequence[str] | None) -> str:
    """The `input` column of one row: {feature: value}, or {"sha256": digest} when hashed."""
    if isinstance(values, str):
        return _json.encode({"sha256": values}).decode()
    if names is not None and len(values) == len(names):
        return _json.encode(dict(zip(names, values, strict=True))).decode()
    return _json.encode(values).decode()


class _Output(msgspec.Struct, gc=False):
    label: Any
    proba: list[float]


class _Label(msgspec.Struct, gc=False):
    label: Any


def output_json(label: Any, proba: list[float] | None) -> str:
    """The `output` column of one row: {"label": ...} and, for classifiers, "proba"."""
    return _json.encode(_Label(label) if proba is None else _Output(label, proba)).decode()


@functools.lru_cache(maxsize=256)
def input_type(names: tuple[str, ...]) -> Any:
    """A Struct type whose fields are the features, renamed to their names.

    Encoded, an instance is the same text as input_json's {feature: value} (keys in feature
    order), in ~0.5 us instead of ~1.2 us for the dict.
    """
    fields = [f"f{i}" for i in range(len(names))]
    return msgspec.defstruct(
        "Input", [(f, Any) for f in fields], rename=dict(zip(fields, names, strict=True)), gc=False
    )


class RowWriter:
    """Writes the table rows of one model version's small requests (see the module's doc)."""

    def __init__(self, manifest: Manifest) -> None:
        self.model = manifest.name
        self.version = manifest.version
        self.names = [f.name for f in manifest.features]
        self._input = input_type(tuple(self.names))

    def rows(
        self,
        request_id: str,
        client_request_id: str | None,
        ts: float,
        role: str,
        latency_s: float,
        values: list[list[Any]],
        labels: list[Any],
        proba: list[list[float]] | None,
        hashed: bool,
    ) -> list[msgspec.Raw]:
        """The encoded LogRows of a request of up to PREPARED_ROWS rows."""
        encode = _json.encode
        make = self._input
        model, version, latency_ms = self.model, self.version, latency_s * 1000.0
        out: list[msgspec.Raw] = []
        # A plain loop: at one row, comprehensions' frames and zips cost more than the JSON.
        for i, row in enumerate(values):
            inp = input_json(hash_row(row), self.names) if hashed else encode(make(*row)).decode()
            output = output_json(labels[i], None if proba is None else proba[i])
            row_tuple = (
                request_id,
                i,
                client_request_id,
                ts,
                model,
                version,
                role,
                inp,
                output,
                latency_ms,
            )
            out.append(msgspec.Raw(_msgpack_encode(row_tuple)))
        return out


def _matrix_form(values: np.ndarray) -> list[Any] | bytes:
    """A float64 matrix as its bytes, row-major; any other array (object rows) as lists."""
    if values.dtype != np.float64 or values.ndim != 2:
        return values.tolist()  # type: ignore[no-any-return]
    return np.ascontiguousarray(values).tobytes()


def request_record(
    manifest: Manifest,
    request_id: str,
    client_request_id: str | None,
    ts: float,
    role: str,
    latency_s: float,
    rows: np.ndarray,
    prediction: Prediction,
    hashed: bool,
) -> msgspec.Raw:
    """One request's record, encoded (the form of requests over PREPARED_ROWS rows)."""
    inputs = [hash_row(v) for v in rows.tolist()] if hashed else _matrix_form(rows)
    proba = None if prediction.proba is None else _matrix_form(prediction.proba)
    record = RequestRecord(
        request_id,
        client_request_id,
        ts,
        manifest.name,
        manifest.version,
        role,
        latency_s,
        inputs,
        prediction.labels.tolist(),
        proba,
    )
    return msgspec.Raw(_msgpack_encode(record))


def record_rows(values: list[Any] | bytes, n: int) -> list[Any]:
    """A record's per-row inputs (or probabilities) as lists, from either form (the inverse of
    _matrix_form for n rows)."""
    if not isinstance(values, bytes):
        return values
    if n == 0:
        return []
    return np.frombuffer(values, dtype=np.float64).reshape(n, -1).tolist()


def encode_frame(
    rows: list[msgspec.Raw], drift: list[DriftRows], requests: list[msgspec.Raw]
) -> bytes:
    """The payload of one spool frame: prepared rows, their drift rows, request records."""
    return FRAME_V2 + _msgpack_encode((rows, drift, requests))


def decode_frame(payload: bytes) -> tuple[list[LogRow], list[DriftRows], list[RequestRecord]]:
    """The contents of one spool frame of either form (older frames hold request records only)."""
    if payload[:1] == FRAME_V2:
        return _v2_decode(memoryview(payload)[1:])
    return [], [], _v1_decode(payload)


def _input_texts(inputs: list[Any], names: list[str] | None) -> list[str]:
    """Each row's `input` JSON: as RowWriter writes it where the row has every feature."""
    if names is None or not inputs or isinstance(inputs[0], str):
        return [input_json(values, names) for values in inputs]
    make, encode, width = input_type(tuple(names)), _json.encode, len(names)
    return [
        encode(make(*values)).decode() if len(values) == width else input_json(values, names)
        for values in inputs
    ]


def explode(record: RequestRecord, names: list[str] | None) -> list[LogRow]:
    """A request record as table rows; inputs become JSON objects keyed by feature name."""
    n = len(record.outputs)
    inputs = record_rows(record.inputs, n)
    if len(inputs) != n:
        raise ValueError("a request record holds as many outputs as input rows")
    labels = record.outputs
    if record.proba is None:
        outputs = [output_json(label, None) for label in labels]
    else:
        proba = record_rows(record.proba, n)
        outputs = [output_json(a, b) for a, b in zip(labels, proba, strict=True)]
    rid, cid, ts = record.request_id, record.client_request_id, record.ts
    model, version, role = record.model, record.version, record.role
    latency_ms = record.latency_s * 1000.0
    return [
        LogRow(rid, i, cid, ts, model, version, role, text, output, latency_ms)
        for i, (text, output) in enumerate(zip(_input_texts(inputs, names), outputs, strict=True))
    ]


def manifest_path(folder: Path, name: str, version: int) -> Path:
    """Where the spool keeps the manifest of a model version."""
    return folder / "manifests" / f"{name}-{version}.json"


def save_manifest(folder: Path, manifest: Manifest) -> None:
    """Write the manifest beside the spool (atomically; once per version)."""
    path = manifest_path(folder, manifest.name, manifest.version)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.encode(manifest))
    tmp.replace(path)


def saved_manifests(folder: Path) -> list[tuple[str, int]]:
    """(name, version) of every manifest saved beside the spool."""
    found = []
    for path in (folder / "manifests").glob("*.json"):
        name, _, version = path.stem.rpartition("-")
        if name and version.isdigit():
            found.append((name, int(version)))
    return sorted(found)


def load_manifest(folder: Path, name: str, version: int) -> Manifest | None:
    """The manifest saved beside the spool, or None."""
    path = manifest_path(folder, name, version)
    try:
        return msgspec.json.decode(path.read_bytes(), type=Manifest)
    except (FileNotFoundError, msgspec.DecodeError):
        return None
