"""The prediction log's record format: what a worker spools and what a sink stores.

A spool frame is one msgpack array of request records (a request with its n rows); the shipper
explodes each into n `LogRow`s keyed by (request_id, row, role). Manifests travel beside the
spool as `manifests/NAME-VERSION.json`, so the shipper knows feature names and training
histograms without the registry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from tabserve.types import Manifest

_msgpack_encode = msgspec.msgpack.Encoder().encode
_msgpack_decode = msgspec.msgpack.Decoder().decode
_json = msgspec.json.Encoder(enc_hook=str)


class RequestRecord(NamedTuple):
    """One served request as spooled: inputs are row lists, or sha256 hex digests when hashed."""

    request_id: str
    client_request_id: str | None
    ts: float  # unix time the prediction was made
    model: str
    version: int
    role: str  # "live" or "shadow"
    latency_s: float
    inputs: list[Any]  # per row: list of feature values, or a sha256 hex string
    outputs: list[Any]  # per row: the predicted label or value
    proba: list[list[float]] | None


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


# Straight into RequestRecord tuples: msgspec checks each field's type as it decodes.
_frame_decode = msgspec.msgpack.Decoder(list[RequestRecord]).decode


def hash_row(values: list[Any]) -> str:
    """The sha256 stored instead of a row's feature values (prediction_log_hash_features)."""
    return hashlib.sha256(_json.encode(values)).hexdigest()


def encode_record(record: RequestRecord) -> msgspec.Raw:
    """One request record, encoded (a frame is a msgpack array of these)."""
    return msgspec.Raw(_msgpack_encode(record))


def encode_frame(records: list[RequestRecord] | list[msgspec.Raw]) -> bytes:
    """The payload of one spool frame, from records or from already encoded ones."""
    return _msgpack_encode(records)


def decode_frame(payload: bytes) -> list[RequestRecord]:
    """Request records from one spool frame."""
    return _frame_decode(payload)


def explode(record: RequestRecord, names: list[str] | None) -> list[LogRow]:
    """A request record as table rows; inputs become JSON objects keyed by feature name."""
    rows = []
    proba = record.proba
    latency_ms = record.latency_s * 1000.0
    encode = _json.encode
    request_id, client_id, ts = record.request_id, record.client_request_id, record.ts
    model, version, role = record.model, record.version, record.role
    width = None if names is None else len(names)
    if len(record.inputs) != len(record.outputs):
        raise ValueError("a request record holds as many outputs as input rows")
    for i, values in enumerate(record.inputs):
        if isinstance(values, str):
            inp: Any = {"sha256": values}
        elif width is not None and len(values) == width:
            inp = dict(zip(names, values, strict=True))  # type: ignore[arg-type]  # set with width
        else:
            inp = values
        out: dict[str, Any] = (
            {"label": record.outputs[i]}
            if proba is None
            else {"label": record.outputs[i], "proba": proba[i]}
        )
        rows.append(
            LogRow(
                request_id,
                i,
                client_id,
                ts,
                model,
                version,
                role,
                encode(inp).decode(),
                encode(out).decode(),
                latency_ms,
            )
        )
    return rows


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
