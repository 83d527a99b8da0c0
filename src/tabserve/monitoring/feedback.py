"""Feedback: true labels attached to logged predictions by (request id, row), and live accuracy."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabserve.errors import DataSourceError, ValidationError
from tabserve.monitoring.sinks import Sink, StoredRow, sink_from_settings
from tabserve.serving import metrics
from tabserve.settings import Settings

MAX_ITEMS = 10_000


def parse_items(body: Any) -> list[tuple[str, int, Any]]:
    """Feedback items from a request body: `{"labels": [{"request_id", "row", "label"}, ...]}`."""
    items = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ValidationError(
            'feedback needs {"labels": [{"request_id": "...", "row": 0, "label": ...}, ...]}',
            [{"loc": ["labels"], "msg": "a non-empty list is required"}],
        )
    if len(items) > MAX_ITEMS:
        raise ValidationError(f"at most {MAX_ITEMS} labels per request: split the batch")
    out = []
    for i, item in enumerate(items):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("request_id"), str)
            and isinstance(item.get("row", 0), int)
            and not isinstance(item.get("row", 0), bool)
            and "label" in item
        )
        if not ok:
            raise ValidationError(
                "each label needs request_id (string), row (integer, default 0) and label",
                [{"loc": ["labels", i], "msg": "expected {request_id, row, label}"}],
            )
        out.append((item["request_id"], int(item.get("row", 0)), item["label"]))
    return out


def record_feedback(sink: Sink, model: str, items: Sequence[tuple[str, int, Any]]) -> int:
    """Store true labels for a model's logged predictions (blocking: run it off the event loop)."""
    n = sink.add_feedback(model, items)
    metrics.count_feedback(model, n)
    return n


def store_feedback(settings: Settings, model: str, items: Sequence[tuple[str, int, Any]]) -> int:
    """Open the prediction-log store, attach the labels, close it (blocking: off the event loop)."""
    # A connection per call: feedback is rare next to predictions, and sqlite3 connections
    # must stay in the thread that opened them.
    sink = sink_from_settings(settings)
    try:
        return record_feedback(sink, model, items)
    finally:
        sink.close()


def read_csv(path: Path) -> list[tuple[str, int, Any]]:
    """Feedback items from a CSV with columns request_id, row (optional) and label."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"request_id", "label"} <= set(reader.fieldnames):
                raise DataSourceError(f"{path} needs the columns request_id, label (and row)")
            return [(r["request_id"], int(r.get("row") or 0), r["label"]) for r in reader]
    except OSError as error:
        raise DataSourceError(f"cannot read {path}: {error}") from error
    except ValueError as error:
        raise DataSourceError(f"{path}: the row column must hold integers ({error})") from error


def _same(predicted: Any, label: Any) -> bool:
    # Labels from CSV arrive as strings; predictions may be numbers: compare as text.
    return str(predicted) == str(label)


def live_performance(rows: Sequence[StoredRow], regression: bool) -> dict[str, float | int | None]:
    """Accuracy (classifiers) or RMSE (regressors) of logged rows that have a true label."""
    labelled = [r for r in rows if r.label is not None]
    if not labelled:
        return {"labelled": 0, "accuracy": None, "rmse": None}
    if regression:
        errors = [(float(r.output["label"]) - float(r.label)) ** 2 for r in labelled]
        return {
            "labelled": len(labelled),
            "accuracy": None,
            "rmse": math.sqrt(sum(errors) / len(errors)),
        }
    hits = sum(_same(r.output["label"], r.label) for r in labelled)
    return {"labelled": len(labelled), "accuracy": hits / len(labelled), "rmse": None}


def publish_window(model: str, rows: Sequence[StoredRow], regression: bool) -> None:
    """Set the live accuracy / RMSE gauges of every version found in a window of labelled rows."""
    by_version: dict[int, list[StoredRow]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(row)
    for version, group in by_version.items():
        publish_live_performance(model, version, group, regression)


def publish_live_performance(
    model: str, version: int, rows: Sequence[StoredRow], regression: bool
) -> None:
    """Set the live accuracy / RMSE gauge from logged rows with feedback."""
    perf = live_performance(rows, regression)
    acc, rmse = perf["accuracy"], perf["rmse"]
    metrics.set_live_performance(
        model,
        version,
        accuracy=None if acc is None else float(acc),
        rmse=None if rmse is None else float(rmse),
    )
