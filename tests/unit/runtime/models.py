"""Small fitted pipelines and their manifests, as `tabserve train` builds them."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_iris

from tabserve.training import schema
from tabserve.training.pipeline import build_pipeline, prepare_features
from tabserve.types import Manifest, RuntimeInfo


class Fitted(NamedTuple):
    pipeline: Any
    manifest: Manifest
    X: pd.DataFrame


def manifest_for(
    X: pd.DataFrame, task: str, classes: list[Any] | None, nullable: set[str]
) -> Manifest:
    """A manifest with the features `tabserve train` would infer from X."""
    return Manifest(
        name="m",
        version=1,
        created_at="2026-01-01T00:00:00Z",
        task=task,  # type: ignore[arg-type]
        target="target",
        features=schema.infer_features(X, list(X.columns), nullable=nullable),
        classes=classes,
        data_fingerprint="",
        source="test",
        estimator="test",
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )


def fit(
    X: pd.DataFrame, y: pd.Series, task: str, estimator: str | None = None, **params: Any
) -> Fitted:
    """Fit tabserve's pipeline for X (lecture default unless `estimator`) and describe it."""
    X = prepare_features(X)
    pipeline = build_pipeline(X, task, estimator, params).fit(X, y)  # type: ignore[arg-type]
    classes = pipeline.classes_.tolist() if task == "classification" else None
    nullable = {str(c) for c in X.columns if X[c].isna().any()}
    return Fitted(pipeline, manifest_for(X, task, classes, nullable), X)


@functools.cache
def iris() -> tuple[pd.DataFrame, pd.Series]:
    """Iris features and integer labels."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@functools.cache
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    """The diabetes regression data."""
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


@functools.cache
def shop(n: int = 400) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Mixed data: numbers and string categories, missing values in both; class and value targets."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "age years": rng.normal(40, 12, n).round(1),
            "income": rng.uniform(0, 100, n),
            "city": rng.choice(["paris", "rome", "oslo"], n).astype(object),
            "size": rng.choice(["S", "M", "L"], n).astype(object),
        }
    )
    X.loc[::7, "age years"] = np.nan
    X.loc[::11, "city"] = np.nan
    X.loc[::5, "income"] = np.nan
    bought = pd.Series(np.where((X["income"].fillna(50) > 50) ^ (X["city"] == "rome"), "yes", "no"))
    spend = pd.Series(X["income"].fillna(3) * 2 + (X["city"] == "rome") * 5 - 40)
    return X, bought, spend


def object_rows(X: pd.DataFrame, manifest: Manifest) -> np.ndarray:
    """Rows as the server sends them for mixed models: floats, strings, None for missing."""
    rows = np.empty((len(X), len(manifest.features)), dtype=object)
    for i, f in enumerate(manifest.features):
        for k, value in enumerate(X[f.column].to_numpy(dtype=object)):
            rows[k, i] = None if pd.isna(value) else (float(value) if f.kind == "number" else value)
    return rows
