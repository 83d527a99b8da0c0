"""Toy manifests and prediction-log settings for the monitoring tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tabserve.monitoring.records import LogRow
from tabserve.settings import Settings
from tabserve.types import Feature, Histogram, Manifest, RuntimeInfo

RNG_SEED = 7


def training_sample(n: int = 5000) -> np.ndarray:
    """Two numeric features as the toy model saw them in training."""
    rng = np.random.default_rng(RNG_SEED)
    return np.column_stack([rng.normal(5.0, 1.0, n), rng.uniform(0.0, 10.0, n)])


def histogram(values: np.ndarray, bins: int = 10) -> Histogram:
    edges = np.quantile(values, np.linspace(0, 1, bins + 1))
    counts, _ = np.histogram(values, bins=edges)
    return Histogram(edges=edges.tolist(), counts=counts.tolist())


def make_manifest(name: str = "toy", version: int = 1) -> Manifest:
    data = training_sample()
    feats = [
        Feature(
            name=n,
            column=n,
            kind="number",
            dtype="float64",
            min=float(data[:, i].min()),
            max=float(data[:, i].max()),
            mean=float(data[:, i].mean()),
            std=float(data[:, i].std()),
            histogram=histogram(data[:, i]),
        )
        for i, n in enumerate(["x1", "x2"])
    ]
    return Manifest(
        name=name,
        version=version,
        created_at="2026-11-24T00:00:00Z",
        task="classification",
        target="y",
        features=feats,
        classes=["a", "b"],
        data_fingerprint="0" * 64,
        source="test",
        estimator="sklearn.dummy.DummyClassifier",
        runtime=RuntimeInfo(kind="onnx", file="model.onnx"),
    )


@pytest.fixture
def manifest() -> Manifest:
    return make_manifest()


@pytest.fixture
def settings(tabserve_home: Path) -> Settings:
    return Settings.model_validate({"home": tabserve_home, "prediction_log_flush_ms": 10})


def log_row(request_id: str, model: str, ts: float) -> LogRow:
    """One prediction-log row of `model` at unix time `ts` (for retention tests)."""
    return LogRow(request_id, 0, None, ts, model, 1, "live", '{"x":1.0}', '{"label":1}', 0.5)
