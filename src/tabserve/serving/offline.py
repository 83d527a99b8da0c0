"""Offline scoring (`tabserve predict`): a CSV through the same validation as the server.

Bad rows are reported by line number and left without a prediction; `strict` makes any bad
row an error before anything is written.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tabserve.errors import DataSourceError, ValidationError
from tabserve.serving.protocols.mlflow import _cell
from tabserve.serving.validation import Schema
from tabserve.types import Manifest, Runtime

__all__ = ["Scored", "predict_csv"]

CHUNK = 10_000


class Scored(NamedTuple):
    """What `predict_csv` did: rows scored and the bad ones as (line, message)."""

    rows: int
    bad: list[tuple[int, str]]


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataSourceError(f"cannot read {path}: {error}") from error
    if not lines:
        raise DataSourceError(f"{path} is empty: it needs a header row naming the features")
    return lines[0], lines[1:]


def predict_csv(
    manifest: Manifest,
    runtime: Runtime,
    source: Path,
    target: Path,
    *,
    proba: bool = False,
    strict: bool = False,
) -> Scored:
    """Score every row of `source` into `target` (its columns plus prediction [and proba_*])."""
    schema = Schema(manifest, max_batch_rows=max(CHUNK, 1))
    header, lines = _read(source)
    numeric = {f.name for f in manifest.features if f.kind == "number"}
    good: list[int] = []
    arrays: list[np.ndarray] = []
    bad: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        number = index + 2  # the header is line 1
        if len(line) != len(header):
            bad.append((number, f"{len(line)} cells but the header has {len(header)}"))
            continue
        record = {
            name: _cell(cell, name in numeric) for name, cell in zip(header, line, strict=True)
        }
        extra = set(record) - set(schema.names)
        for name in extra:
            del record[name]  # other columns (an id, the target) travel through untouched
        try:
            arrays.append(schema.from_records([record], ("line", number)))
        except ValidationError as error:
            bad.append((number, "; ".join(d["msg"] for d in error.details) or error.message))
            continue
        good.append(index)
    if strict and bad:
        first, message = bad[0]
        raise ValidationError(
            f"{source}: line {first}: {message} ({len(bad)} bad rows; without --strict they are "
            "reported and skipped)"
        )
    labels: list[Any] = []
    probas: list[np.ndarray] = []
    for start in range(0, len(arrays), CHUNK):
        rows = np.concatenate(arrays[start : start + CHUNK])
        prediction = runtime.predict(rows)
        labels.extend(prediction.labels.tolist())
        if proba and prediction.proba is not None:
            probas.append(prediction.proba)
    proba_matrix = np.concatenate(probas) if probas else None
    classes = manifest.classes or []
    out_header = [*header, "prediction"]
    if proba_matrix is not None:
        out_header += [f"proba_{c}" for c in classes]
    scored = dict(zip(good, range(len(good)), strict=True))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(out_header)
        for index, line in enumerate(lines):
            position = scored.get(index)
            if position is None:
                extra_cells = [""] * (len(out_header) - len(header))
                writer.writerow([*line[: len(header)], *extra_cells])
                continue
            row = [*line, labels[position]]
            if proba_matrix is not None:
                row += [repr(float(p)) for p in proba_matrix[position]]
            writer.writerow(row)
    return Scored(len(good), bad)
