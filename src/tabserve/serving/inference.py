"""The transport-free inference path: validated rows -> batcher -> runtime -> Prediction.

`ModelService` holds one served model: its manifest, schema, runtime and batcher. REST and
(later) gRPC both call `await service.predict(rows, ...)` with rows already validated by the
codec through `service.schema`. The prediction log hands over each served request at one
call site, `_log`, through the small `PredictionSink` protocol (default: no-op).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tabserve.errors import ArtifactError, RequestTimeoutError
from tabserve.logging import get_logger
from tabserve.serving import metrics
from tabserve.serving.batching import Batcher
from tabserve.serving.validation import Schema
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction, Runtime, RuntimeKind

__all__ = [
    "ModelService",
    "NullSink",
    "PipelineRuntime",
    "PredictionSink",
    "load_runtime",
    "self_test_row",
]

log = get_logger("tabserve.inference")


class PredictionSink(Protocol):
    """Where each served request goes after its answer is known (the prediction log)."""

    def record(
        self,
        manifest: Manifest,
        request_id: str,
        client_request_id: str | None,
        rows: np.ndarray,
        prediction: Prediction,
        latency: float,
        role: str = "live",
    ) -> Awaitable[None] | None:
        """Take one request's rows and outputs; an awaitable means wait for durability."""


class NullSink:
    """The default sink: records nothing."""

    def record(
        self,
        manifest: Manifest,
        request_id: str,
        client_request_id: str | None,
        rows: np.ndarray,
        prediction: Prediction,
        latency: float,
        role: str = "live",
    ) -> None:
        """Drop the record."""
        return None


class PipelineRuntime:
    """A scikit-learn pipeline behind the Runtime interface (also the in-memory test runtime)."""

    kind: RuntimeKind = "sklearn"

    def __init__(self, pipeline: Any, manifest: Manifest) -> None:
        self.pipeline = pipeline
        self.columns = [f.column for f in manifest.features]
        self.classifier = manifest.task == "classification" and hasattr(pipeline, "predict_proba")

    def predict(self, rows: np.ndarray) -> Prediction:
        """Labels (and class probabilities for classifiers) for rows in feature order."""
        import pandas as pd

        frame = pd.DataFrame(rows, columns=self.columns)
        if rows.dtype == object:
            frame = frame.infer_objects()
        labels = np.asarray(self.pipeline.predict(frame))
        proba = None
        if self.classifier:
            proba = np.asarray(self.pipeline.predict_proba(frame), dtype=np.float64)
        return Prediction(labels, proba)

    def close(self) -> None:
        """Nothing to release."""


def load_runtime(path: Path, manifest: Manifest, *, threads: int, settings: Settings) -> Runtime:
    """The runtime the manifest names, loaded from a verified artifact folder."""
    try:
        from tabserve.runtime import load_runtime as load
    except ImportError:  # the runtime package is not installed yet: scikit-learn serves
        from tabserve.artifacts import store

        pipeline = store.load_pipeline(
            path, manifest, allow_version_mismatch=settings.allow_version_mismatch
        )
        return PipelineRuntime(pipeline, manifest)
    return load(path, manifest, threads=threads)


def self_test_row(schema: Schema) -> np.ndarray:
    """One training-range row: the mean of each numeric feature, the first category."""
    row: list[Any] = []  # floats and category strings
    for f in schema.features:
        if f.kind == "number":
            if f.mean is not None:
                row.append(f.mean)
            elif f.min is not None and f.max is not None:
                row.append((f.min + f.max) / 2)
            else:
                row.append(0.0)
        else:
            row.append(f.categories[0] if f.categories else None)
    return np.array([row], dtype=schema.dtype)


class ModelService:
    """One served model version: validate with `schema`, then `await predict(rows)`."""

    def __init__(
        self,
        manifest: Manifest,
        runtime: Runtime | None,
        settings: Settings,
        sink: PredictionSink | None = None,
    ) -> None:
        self.settings = settings
        self.sink: PredictionSink = sink or NullSink()
        self.manifest = manifest
        self.schema = Schema(manifest, settings.max_batch_rows)
        self.name = manifest.name
        self.version = str(manifest.version)
        self.runtime: Runtime | None = None
        self.ready = False
        self.classifier = manifest.task == "classification"
        self.batcher = Batcher(
            self._predict,
            max_rows=settings.batch_max_rows,
            max_wait=settings.batch_max_wait_ms / 1000.0,
            observe=self._observe,
            name=manifest.name,
            timeout=settings.request_timeout,
        )
        if runtime is not None:
            self.swap(manifest, runtime)

    def _observe(self, rows: int, wait: float) -> None:
        metrics.observe_batch(self.name, rows, wait)

    def _predict(self, rows: np.ndarray) -> Prediction:
        runtime = self.runtime
        if runtime is None:
            raise ArtifactError(f"{self.name} has no runtime loaded")
        return runtime.predict(rows)

    def swap(self, manifest: Manifest, runtime: Runtime) -> None:
        """Self-test `runtime`, then make it the one serving (atomically: one assignment)."""
        schema = (
            self.schema
            if manifest is self.manifest
            else Schema(manifest, self.schema.max_batch_rows)
        )
        check(runtime, schema)
        old = self.runtime
        # One tuple of state is switched between two awaits: in-flight batches keep the old.
        self.manifest, self.schema, self.runtime = manifest, schema, runtime
        self.version = str(manifest.version)
        self.ready = True
        if old is not None and old is not runtime:
            old.close()

    async def predict(
        self,
        rows: np.ndarray,
        *,
        request_id: str = "",
        client_request_id: str | None = None,
    ) -> tuple[Prediction, Manifest]:
        """Predict validated rows; returns the prediction and the manifest that served it."""
        started = time.perf_counter()
        manifest = self.manifest
        try:
            prediction = await self.batcher.submit(rows)
        except TimeoutError:
            raise RequestTimeoutError(
                f"the prediction took longer than --request-timeout "
                f"({self.settings.request_timeout:g} s): retry, or send fewer rows"
            ) from None
        latency = time.perf_counter() - started
        if not self.schema.all_in_range(rows):
            metrics.count_out_of_range(self.name, manifest, rows)
        metrics.count_predictions(
            self.name, manifest.version, prediction.labels, regression=not self.classifier
        )
        # The prediction log's one call site: each served request, its rows and outputs.
        waiting = self.sink.record(
            manifest, request_id, client_request_id, rows, prediction, latency
        )
        if waiting is not None:
            await waiting
        return prediction, manifest

    def close(self) -> None:
        """Release the runtime and the predict thread."""
        self.ready = False
        self.batcher.close()
        if self.runtime is not None:
            self.runtime.close()


def check(runtime: Runtime, schema: Schema) -> None:
    """The self-test: one training-range row must predict, with probabilities that fit."""
    manifest = schema.manifest
    try:
        prediction = runtime.predict(self_test_row(schema))
    except Exception as error:
        raise ArtifactError(
            f"{manifest.ref} failed its self-test prediction ({type(error).__name__}: {error}): "
            "re-train or re-import the model"
        ) from error
    if len(prediction.labels) != 1:
        raise ArtifactError(f"{manifest.ref} self-test returned {len(prediction.labels)} labels")
    proba = prediction.proba
    if (
        manifest.classes is not None
        and proba is not None
        and proba.shape != (1, len(manifest.classes))
    ):
        raise ArtifactError(
            f"{manifest.ref} self-test returned probabilities of shape "
            f"{proba.shape}, expected (1, {len(manifest.classes)})"
        )
