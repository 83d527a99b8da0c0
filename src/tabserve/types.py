"""The contracts every part of tabserve shares, stated once.

Model path:   training -> artifact (Manifest + files + hashes) -> registry -> serving -> Runtime.
Request path: protocol codec -> validation (against Manifest.features) -> batching -> Runtime.

A Runtime sees only arrays: protocol objects stop at the codec.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Protocol

import msgspec
import numpy as np

Task = Literal["classification", "regression"]
FeatureKind = Literal["number", "category"]
RuntimeKind = Literal["onnx", "sklearn"]

MANIFEST_FORMAT = 1


class Histogram(msgspec.Struct, frozen=True):
    """Training distribution of a numeric feature: quantile bin edges and the count in each bin."""

    edges: list[float]
    counts: list[int]


class Feature(msgspec.Struct, frozen=True):
    """One input column as clients send it and as the model receives it."""

    name: str  # the name clients use (query argument, JSON key, V2 tensor name)
    column: str  # the model's own column name (feature_names_in_); often equal to name
    kind: FeatureKind
    dtype: str  # the training dtype, e.g. "float64", "int64", "object"
    nullable: bool = False  # missing values (null / NaN) are accepted
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    histogram: Histogram | None = None
    categories: list[str] | None = None  # seen categories, for kind == "category"
    missing_fraction: float = 0.0
    # Training count of each seen category (kind == "category"), for drift; absent in old manifests.
    category_counts: dict[str, int] | None = None


class RuntimeInfo(msgspec.Struct, frozen=True):
    """Which runtime serves the artifact, and why when it is not the fast one."""

    kind: RuntimeKind
    file: str  # artifact-relative path of the file this runtime loads
    reason: str | None = None  # why the ONNX runtime was not used (parity failure, unsupported op)
    parity: dict[str, Any] | None = None  # rows checked, label mismatches, max probability diff


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """manifest.json: everything needed to serve, verify and explain one model version."""

    format: int = MANIFEST_FORMAT
    name: str
    version: int
    created_at: str  # ISO 8601, UTC
    task: Task
    target: str
    features: list[Feature]
    classes: list[Any] | None = None  # class labels in predict_proba order (classifiers)
    metrics: dict[str, Any] = {}
    data_fingerprint: str  # sha256 of the training data as read
    source: str  # where the data came from, never with a password
    estimator: str  # dotted path of the final estimator
    params: dict[str, Any] = {}
    environment: dict[str, str] = {}  # python, scikit-learn, numpy, scipy, skops, ...
    runtime: RuntimeInfo
    files: dict[str, str] = {}  # artifact-relative path -> sha256 of every file but the manifest

    @property
    def ref(self) -> str:
        """`name:version`, the way the CLI and logs name a model version."""
        return f"{self.name}:{self.version}"

    @property
    def all_numeric(self) -> bool:
        """True when every feature is a number, so rows travel as one float64 matrix."""
        return all(f.kind == "number" for f in self.features)


class Prediction(NamedTuple):
    """What a runtime returns for n rows."""

    labels: np.ndarray  # shape (n,): class labels (classifiers) or float64 values (regressors)
    proba: np.ndarray | None  # shape (n, n_classes) float64, columns in Manifest.classes order


class Runtime(Protocol):
    """A loaded model. `predict` takes rows in Manifest.features order and is thread-safe.

    Rows are a 2-D array: float64 when every feature is numeric (NaN = missing), otherwise
    dtype object holding floats, category strings and None for missing values.
    """

    kind: RuntimeKind

    def predict(self, rows: np.ndarray) -> Prediction: ...

    def close(self) -> None: ...
