"""The scikit-learn runtime: the artifact's own pipeline, loaded from model.skops with skops.

Rows become a DataFrame with the model's own column names and training dtypes, so every
pipeline that scikit-learn can run is served, exactly as it was trained.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tabserve.runtime.threads import limit_pools
from tabserve.types import Manifest, Prediction, RuntimeKind


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _integral(numbers: np.ndarray) -> bool:
    return bool(np.isfinite(numbers).all() and (numbers == np.round(numbers)).all())


class SklearnRuntime:
    """A fitted scikit-learn pipeline behind the Runtime interface."""

    kind: RuntimeKind = "sklearn"

    def __init__(self, pipeline: Any, manifest: Manifest, *, threads: int | None = 1) -> None:
        self.pipeline = pipeline
        self.manifest = manifest
        self.features = manifest.features
        self.classifier = manifest.task == "classification"
        self.classes = np.asarray(manifest.classes) if manifest.classes is not None else None
        # threads=None (the converter's parity check) leaves the process and pipeline as they are.
        if threads is not None:
            self._limits = limit_pools(threads)
            _cap_jobs(pipeline, threads)

    def frame(self, rows: np.ndarray) -> Any:
        """Rows as the DataFrame the pipeline was trained on (column names and dtypes)."""
        import pandas as pd

        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise ValueError(f"rows must be [n, {len(self.features)}], got {list(rows.shape)}")
        columns: dict[str, Any] = {}
        for i, feature in enumerate(self.features):
            values = rows[:, i]
            if feature.kind == "number":
                numbers = np.asarray(values, dtype=np.float64)
                if feature.dtype.startswith("int") and _integral(numbers):
                    numbers = numbers.astype(feature.dtype)
                columns[feature.column] = numbers
            else:
                # scikit-learn's imputers see NaN, not None, as missing in object columns.
                cells = [np.nan if _is_missing(v) else v for v in values]
                # pandas 3 would infer its str dtype; keep object when the model trained on it.
                dtype = object if feature.dtype == "object" else None
                columns[feature.column] = pd.Series(cells, dtype=dtype)
        return pd.DataFrame(columns)

    def predict(self, rows: np.ndarray) -> Prediction:
        """Labels (and class probabilities for classifiers) for rows in feature order."""
        frame = self.frame(rows)
        labels = np.asarray(self.pipeline.predict(frame))
        if not self.classifier:
            return Prediction(labels.astype(np.float64).reshape(-1), None)
        if self.classes is not None:
            labels = labels.astype(self.classes.dtype, copy=False)
        proba = None
        if hasattr(self.pipeline, "predict_proba"):
            proba = np.asarray(self.pipeline.predict_proba(frame), dtype=np.float64)
        return Prediction(labels, proba)

    def close(self) -> None:
        """Drop the pipeline."""
        self.pipeline = None


def _cap_jobs(pipeline: Any, threads: int) -> None:
    # Forests predict with joblib threads when n_jobs is set; keep them within the worker's share.
    steps = getattr(pipeline, "steps", None) or [("model", pipeline)]
    for _, step in steps:
        if getattr(step, "n_jobs", None) not in (None, 1):
            step.n_jobs = max(1, threads)


def load_sklearn(artifact_dir: Path, manifest: Manifest, *, threads: int = 1) -> SklearnRuntime:
    """The scikit-learn runtime for an artifact folder (hashes and trusted types checked)."""
    from tabserve.artifacts import store

    pipeline = store.load_pipeline(artifact_dir, manifest)
    return SklearnRuntime(pipeline, manifest, threads=threads)
