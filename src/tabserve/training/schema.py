"""The feature schema, data fingerprint and environment recorded in a model's manifest."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform

import numpy as np
import pandas as pd

from tabserve.types import Feature, Histogram

HISTOGRAM_BINS = 10

# Distribution names whose exact versions decide whether an artifact loads and behaves the same.
ENVIRONMENT_PACKAGES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "skops",
    "onnx",
    "onnxruntime",
    "skl2onnx",
)


def is_numeric(series: pd.Series) -> bool:
    """True for int/float columns; bool counts as a category, not a number."""
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _histogram(values: np.ndarray) -> Histogram:
    """Quantile bin edges (deduplicated, first/last = min/max) and the count in each bin."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    if len(edges) == 1:  # a constant column: one bin holding every value
        return Histogram(edges=[float(edges[0]), float(edges[0])], counts=[len(values)])
    counts, _ = np.histogram(values, bins=edges)
    return Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts])


def _number(name: str, column: str, series: pd.Series, nullable: bool) -> Feature:
    values = series.dropna().to_numpy(dtype=np.float64)
    missing = float(series.isna().mean()) if len(series) else 0.0
    if len(values) == 0:
        return Feature(
            name=name,
            column=column,
            kind="number",
            dtype=str(series.dtype),
            nullable=True,
            missing_fraction=missing,
        )
    return Feature(
        name=name,
        column=column,
        kind="number",
        dtype=str(series.dtype),
        nullable=nullable or missing > 0,
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean()),
        std=float(values.std()),
        histogram=_histogram(values),
        missing_fraction=missing,
    )


def _category(name: str, column: str, series: pd.Series, nullable: bool) -> Feature:
    missing = float(series.isna().mean()) if len(series) else 0.0
    # Counted as the strings clients send, so drift compares like with like.
    counts = series.dropna().map(str).value_counts()
    categories = sorted(str(v) for v in counts.index)
    return Feature(
        name=name,
        column=column,
        kind="category",
        dtype=str(series.dtype),
        nullable=nullable or missing > 0,
        categories=categories,
        missing_fraction=missing,
        category_counts={c: int(counts[c]) for c in categories},
    )


def infer_features(
    X: pd.DataFrame, names: list[str] | None = None, *, nullable: set[str] | None = None
) -> list[Feature]:
    """One Feature per column of X, in order; `names` are the client names if they differ."""
    columns = [str(c) for c in X.columns]
    if names is not None and len(names) != len(columns):
        raise ValueError(f"{len(names)} feature names given for {len(columns)} columns")
    client_names = names if names is not None else columns
    imputed = nullable or set()
    features = []
    for name, column, key in zip(client_names, columns, X.columns, strict=True):
        series = X[key]
        is_nullable = column in imputed or name in imputed
        if is_numeric(series):
            features.append(_number(name, column, series, is_nullable))
        else:
            features.append(_category(name, column, series, is_nullable))
    return features


def fingerprint(X: pd.DataFrame, y: pd.Series | None = None) -> str:
    """sha256 over column names, dtypes and values: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    frame = X.copy()
    if y is not None:  # an imported model's sample may come without its target
        frame[f"__target__{y.name}"] = y.to_numpy()
    for column in frame.columns:
        series = frame[column]
        digest.update(f"{column}\x1f{series.dtype}\x1e".encode())
        # hash_pandas_object is deterministic across runs and platforms for the same values.
        hashed = pd.util.hash_pandas_object(series.reset_index(drop=True), index=False)
        digest.update(hashed.to_numpy(dtype=np.uint64).tobytes())
    return digest.hexdigest()


def environment() -> dict[str, str]:
    """Exact versions of Python and the libraries that train, save and run a model."""
    versions = {"python": platform.python_version()}
    for package in ENVIRONMENT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
