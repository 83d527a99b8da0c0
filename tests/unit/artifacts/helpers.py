"""Helpers for the artifact tests: a plausible Iris manifest."""

from __future__ import annotations

import sklearn

from tabserve.types import Feature, Manifest, RuntimeInfo

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def make_manifest(name: str = "iris", **changes: object) -> Manifest:
    """A plausible manifest for the Iris pipeline."""
    fields: dict[str, object] = {
        "name": name,
        "version": 0,
        "created_at": "2026-11-24T12:00:00Z",
        "task": "classification",
        "target": "target",
        "features": [Feature(name=n, column=n, kind="number", dtype="float64") for n in NAMES],
        "classes": [0, 1, 2],
        "metrics": {"accuracy": 0.933, "per_class": {"0": {"f1": 1.0}}},
        "data_fingerprint": "0" * 64,
        "source": "iris",
        "estimator": "sklearn.ensemble.GradientBoostingClassifier",
        "environment": {"python": "3.11", "scikit-learn": sklearn.__version__},
        "runtime": RuntimeInfo(kind="sklearn", file="model.skops"),
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]
