"""The rows a converted model must answer exactly as scikit-learn does.

Training and test rows, random rows within and 10% beyond the training range (with missing
values where the feature allows them), and rows on the trees' split thresholds: for each
threshold, the two float64 inputs on either side of the point where the tree's comparison
flips (scikit-learn's trees compare float32(x), its histogram trees float64 x), found by
bisection through the pipeline's own preprocessing. Those last rows are where a rounding
difference anywhere before the trees shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tabserve.artifacts.onnx_boosting import is_histogram, tree_nodes
from tabserve.types import Feature, Manifest

RANDOM_ROWS = 2000
MAX_SPLITS = 4000  # distinct (feature, threshold) pairs checked; more are sampled
BASE_ROWS = 3  # each threshold value is placed into this many training rows
MISSING_SHARE = 0.05
_BISECT_STEPS = 200

Transform = Callable[[pd.DataFrame], np.ndarray]


def rows_from_frame(frame: pd.DataFrame, manifest: Manifest) -> np.ndarray:
    """A DataFrame as serving rows: float64 matrix, or objects with None for missing values."""
    columns = [f.column for f in manifest.features]
    if manifest.all_numeric:
        matrix: np.ndarray = frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
        return matrix
    rows = np.empty((len(frame), len(columns)), dtype=object)
    for i, f in enumerate(manifest.features):
        values = frame[f.column].to_numpy(dtype=object)
        if f.kind == "number":
            rows[:, i] = [None if _missing(v) else float(v) for v in values]
        else:
            rows[:, i] = [None if _missing(v) else v for v in values]
    return rows


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def check_frame(
    pipeline: object, manifest: Manifest, X_check: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """X_check plus random and threshold rows, and how many of each."""
    rng = np.random.default_rng(0)
    columns = [f.column for f in manifest.features]
    given = _normalise(X_check[columns], manifest)
    random = _random_rows(given, manifest, rng)
    splits = _threshold_rows(pipeline, given, manifest, rng)
    frame = pd.concat([given, random, splits], ignore_index=True)
    counts = {"check_rows": len(given), "random_rows": len(random), "threshold_rows": len(splits)}
    return frame, counts


def _normalise(frame: pd.DataFrame, manifest: Manifest) -> pd.DataFrame:
    out = {}
    for f in manifest.features:
        values = frame[f.column]
        if f.kind == "number":
            out[f.column] = pd.to_numeric(values, errors="raise").astype(np.float64).to_numpy()
        else:
            out[f.column] = np.array(
                [np.nan if _missing(v) else v for v in values.to_numpy(dtype=object)], dtype=object
            )
    return pd.DataFrame(out)


def _bounds(f: Feature, values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo = f.min if f.min is not None else (float(finite.min()) if len(finite) else 0.0)
    hi = f.max if f.max is not None else (float(finite.max()) if len(finite) else 1.0)
    return float(lo), float(hi)


def _categories(f: Feature, values: np.ndarray) -> list[Any]:
    seen = [v for v in pd.unique(values) if not _missing(v)]
    return seen or list(f.categories or [])


def _random_rows(given: pd.DataFrame, manifest: Manifest, rng: np.random.Generator) -> pd.DataFrame:
    n = RANDOM_ROWS
    out: dict[str, Any] = {}
    for f in manifest.features:
        values = given[f.column].to_numpy()
        may_miss = f.nullable or bool(pd.isna(given[f.column]).any())
        if f.kind == "number":
            lo, hi = _bounds(f, values.astype(np.float64))
            span = (hi - lo) or 1.0
            column = rng.uniform(lo - 0.1 * span, hi + 0.1 * span, n)
            if f.dtype.startswith("int"):
                column = np.round(column)
            if may_miss:
                column[rng.random(n) < MISSING_SHARE] = np.nan
            out[f.column] = column
        else:
            cats = _categories(f, values)
            picked = np.empty(n, dtype=object)
            picked[:] = [cats[i] for i in rng.integers(0, len(cats), n)] if cats else np.nan
            if may_miss:
                picked[rng.random(n) < MISSING_SHARE] = np.nan
            out[f.column] = picked
    return pd.DataFrame(out)


def _split_pipeline(pipeline: object) -> tuple[Transform | None, object]:
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) < 2:
        return None, pipeline
    prefix: Any = pipeline[:-1]  # type: ignore[index]
    return (lambda frame: np.asarray(prefix.transform(frame), dtype=np.float64)), steps[-1][1]


def tree_splits(estimator: object) -> list[tuple[int, float]]:
    """Distinct (feature, threshold) pairs of a tree or tree ensemble; [] for other models."""
    if is_histogram(estimator):
        histogram = {
            (int(f), float(t))
            for nodes in tree_nodes(estimator)
            for f, t, leaf in zip(
                nodes["feature_idx"], nodes["num_threshold"], nodes["is_leaf"], strict=True
            )
            if not leaf and np.isfinite(t)  # +inf: "every number left, missing right"
        }
        return sorted(histogram)
    if hasattr(estimator, "tree_"):
        trees: list[Any] = [estimator]
    else:
        members = getattr(estimator, "estimators_", None)
        if members is None:
            return []
        trees = [t for t in np.ravel(np.asarray(members, dtype=object)) if hasattr(t, "tree_")]
    pairs: set[tuple[int, float]] = set()
    for tree in trees:
        inner = tree.tree_.feature >= 0
        pairs.update(
            zip(
                tree.tree_.feature[inner].tolist(),
                tree.tree_.threshold[inner].tolist(),
                strict=True,
            )
        )
    return sorted(pairs)


def _base_row(given: pd.DataFrame, manifest: Manifest) -> pd.DataFrame:
    row: dict[str, Any] = {}
    for f in manifest.features:
        values = given[f.column]
        if f.kind == "number":
            median = (
                float(np.nanmedian(values.to_numpy(np.float64))) if values.notna().any() else 0.0
            )
            row[f.column] = [median]
        else:
            cats = _categories(f, values.to_numpy(dtype=object))
            row[f.column] = np.array([cats[0] if cats else np.nan], dtype=object)
    return pd.DataFrame(row)


def _with_values(
    base: pd.DataFrame, columns: list[str], targets: np.ndarray, values: np.ndarray
) -> pd.DataFrame:
    """len(values) copies of the one-row `base`, row k with columns[targets[k]] = values[k]."""
    n = len(values)
    frame = base.loc[base.index.repeat(n)].reset_index(drop=True)
    for i, column in enumerate(columns):
        chosen = targets == i
        if chosen.any():
            data = frame[column].to_numpy(dtype=np.float64, copy=True)
            data[chosen] = values[chosen]
            frame[column] = data
    return frame


def _input_of_columns(
    transform: Transform | None, base: pd.DataFrame, numbers: list[str], given: pd.DataFrame
) -> dict[int, int]:
    """Which numeric input drives each transformed column (columns driven by several: none)."""
    if transform is None:
        return {i: i for i in range(len(numbers))}
    lo = np.array([np.nanmin(given[c].to_numpy(np.float64)) for c in numbers])
    hi = np.array([np.nanmax(given[c].to_numpy(np.float64)) for c in numbers])
    hi = np.where(hi > lo, hi, lo + 1.0)
    targets = np.repeat(np.arange(len(numbers)), 2)
    values = np.column_stack([lo, hi]).reshape(-1)
    out = transform(_with_values(base, numbers, targets, values))
    drivers: dict[int, list[int]] = {}
    for i in range(len(numbers)):
        for j in np.flatnonzero(out[2 * i] != out[2 * i + 1]).tolist():
            drivers.setdefault(j, []).append(i)
    return {j: inputs[0] for j, inputs in drivers.items() if len(inputs) == 1}


def _threshold_rows(
    pipeline: object, given: pd.DataFrame, manifest: Manifest, rng: np.random.Generator
) -> pd.DataFrame:
    transform, final = _split_pipeline(pipeline)
    splits = tree_splits(final)
    numbers = [f.column for f in manifest.features if f.kind == "number"]
    if not splits or not numbers or given.empty:
        return given.iloc[:0]
    if len(splits) > MAX_SPLITS:
        keep = rng.choice(len(splits), MAX_SPLITS, replace=False)
        splits = [splits[k] for k in sorted(keep)]
    base = _base_row(given, manifest)
    if transform is None:
        # A bare estimator sees the frame's columns: map estimator column -> numeric input.
        position = {f.column: k for k, f in enumerate(manifest.features) if f.kind == "number"}
        mapping = {position[c]: numbers.index(c) for c in numbers}
    else:
        mapping = _input_of_columns(transform, base, numbers, given)
    usable = [(mapping[j], j, t) for j, t in splits if j in mapping]
    if not usable:
        return given.iloc[:0]
    inputs = np.array([u[0] for u in usable])
    columns = np.array([u[1] for u in usable])
    thresholds = np.array([u[2] for u in usable])
    inputs, thresholds, lo, hi = _bisect(
        transform, base, numbers, given, inputs, columns, thresholds, not is_histogram(final)
    )
    values = [lo, hi] + ([thresholds] if transform is None else [])
    targets = np.concatenate([inputs] * len(values))
    flat = np.concatenate(values)
    frames = []
    picks = rng.choice(len(given), min(BASE_ROWS, len(given)), replace=False)
    for k in picks:
        frames.append(
            _with_values(given.iloc[[int(k)]].reset_index(drop=True), numbers, targets, flat)
        )
    return pd.concat(frames, ignore_index=True)


def _bisect(
    transform: Transform | None,
    base: pd.DataFrame,
    numbers: list[str],
    given: pd.DataFrame,
    inputs: np.ndarray,
    columns: np.ndarray,
    thresholds: np.ndarray,
    float32: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, thresholds, lo, hi) of the splits that flip in range: lo, hi adjacent float64 inputs on either side of where x' <= t flips (float32(x') when `float32`)."""

    def below(x: np.ndarray) -> np.ndarray:
        if transform is None:
            out = x
        else:
            out = transform(_with_values(base, numbers, inputs, x))[np.arange(len(x)), columns]
        # scikit-learn's trees compare float32(X) with float64 thresholds, histogram trees X.
        compared = np.asarray(out, dtype=np.float32 if float32 else np.float64)
        return compared.astype(np.float64) <= thresholds

    mins = np.array([np.nanmin(given[c].to_numpy(np.float64)) for c in numbers])[inputs]
    maxs = np.array([np.nanmax(given[c].to_numpy(np.float64)) for c in numbers])[inputs]
    span = np.maximum(maxs - mins, 1.0)
    lo, hi = mins - span, maxs + span
    at_lo = below(lo)
    if transform is None:
        lo, hi = np.minimum(lo, thresholds - 1.0), np.maximum(hi, thresholds + 1.0)
        at_lo = below(lo)
    flips = at_lo != below(hi)
    lo, hi, at_lo = lo[flips], hi[flips], at_lo[flips]
    inputs, columns, thresholds = inputs[flips], columns[flips], thresholds[flips]
    for _ in range(_BISECT_STEPS):
        mid = lo + (hi - lo) / 2
        active = (mid > lo) & (mid < hi)
        if not active.any():
            break
        same = below(mid) == at_lo
        lo = np.where(active & same, mid, lo)
        hi = np.where(active & ~same, mid, hi)
    return inputs, thresholds, lo, hi
