"""The transport-free inference path: validated rows -> batcher -> runtime -> Prediction.

`ModelService` holds one served model: its manifest, schema, runtime and batcher. REST and
(later) gRPC both call `await service.predict(rows, ...)` with rows already validated by the
codec through `service.schema`. The prediction log hands over each served request at one
call site, `_log`, through the small `PredictionSink` protocol (default: no-op).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tabserve.errors import ArtifactError, OverloadedError, RequestTimeoutError
from tabserve.logging import get_logger
from tabserve.serving import metrics
from tabserve.serving.batching import Batcher
from tabserve.serving.validation import Schema
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction, Runtime

__all__ = [
    "LoadedVersion",
    "ModelService",
    "NullSink",
    "PredictionSink",
    "check",
    "input_signature",
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


def load_runtime(path: Path, manifest: Manifest, *, threads: int, settings: Settings) -> Runtime:
    """The runtime the manifest names, loaded from a verified artifact folder."""
    from tabserve.runtime import load_runtime as load

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


Shadow = Callable[[np.ndarray, Prediction, Manifest, str, "str | None"], None]


def input_signature(manifest: Manifest) -> tuple[tuple[Any, ...], ...]:
    """What validation depends on: rows validated for one signature fit any version sharing it."""
    return tuple(
        (f.name, f.column, f.kind, f.nullable, tuple(f.categories or ())) for f in manifest.features
    )


class LoadedVersion:
    """One loaded version with its own batcher: each batch is predicted and labelled by one pair."""

    def __init__(
        self, manifest: Manifest, runtime: Runtime, schema: Schema, batcher: Batcher
    ) -> None:
        self.manifest = manifest
        self.runtime = runtime
        self.schema = schema
        self.batcher = batcher
        self.version = str(manifest.version)
        self.signature = input_signature(manifest)
        self.in_flight = 0  # requests submitted to this version and not yet answered
        self.retired = False
        self.closed = False

    def release(self) -> None:
        """One request answered; the last one out of a retired version closes it."""
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self.close()

    def retire(self) -> None:
        """No new requests come here: close now, or when the in-flight ones are answered."""
        self.retired = True
        if self.in_flight == 0:
            self.close()

    def close(self) -> None:
        """Release the runtime and the predict thread."""
        if not self.closed:
            self.closed = True
            self.batcher.close()
            self.runtime.close()


class ModelService:
    """One served model: validate with `schema`, then `await predict(rows)`.

    The version serving it can change (`swap`, hot swap on promote): each request is pinned
    to the version current when it is submitted, and is predicted and labelled by it.
    """

    def __init__(
        self,
        manifest: Manifest,
        runtime: Runtime | None,
        settings: Settings,
        sink: PredictionSink | None = None,
        *,
        inline: bool = True,
    ) -> None:
        self.settings = settings
        self.sink: PredictionSink = sink or NullSink()
        self.name = manifest.name
        self.classifier = manifest.task == "classification"
        self.inline = inline  # False for a shadow: its predicts always leave the event loop
        self.ready = False
        self.current: LoadedVersion | None = None
        self.swaps = 0  # versions switched in after the first
        self.shadow: Shadow | None = None  # called with each live answer (shadow traffic)
        self._manifest = manifest  # what the metadata shows until a runtime is in
        self._schema = Schema(manifest, settings.max_batch_rows)
        if runtime is not None:
            self.swap(manifest, runtime)

    @property
    def manifest(self) -> Manifest:
        """The manifest of the version serving now."""
        current = self.current
        return self._manifest if current is None else current.manifest

    @property
    def schema(self) -> Schema:
        """The schema requests are validated with now."""
        current = self.current
        return self._schema if current is None else current.schema

    @property
    def version(self) -> str:
        """The version serving now."""
        return str(self.manifest.version)

    @property
    def runtime(self) -> Runtime | None:
        """The runtime serving now."""
        current = self.current
        return None if current is None else current.runtime

    def _observe(self, rows: int, wait: float) -> None:
        metrics.observe_batch(self.name, rows, wait)

    def swap(self, manifest: Manifest, runtime: Runtime, *, tested: bool = False) -> None:
        """Self-test `runtime` (unless `tested`), then make it the one serving, atomically.

        Call on the event loop (or before it runs): in-flight requests finish on the old
        version, which is closed when its last one is answered.
        """
        old = self.current
        if old is not None and old.runtime is runtime and old.manifest is manifest:
            return
        schema = Schema(manifest, self.settings.max_batch_rows)
        if not tested:
            check(runtime, schema)
        s = self.settings
        batcher = Batcher(
            runtime.predict,
            max_rows=s.batch_max_rows,
            max_wait=s.batch_max_wait_ms / 1000.0,
            observe=self._observe,
            name=f"{manifest.name}-{manifest.version}",
            timeout=s.request_timeout,
            # The runtime says whether its predicts are fast enough for the event loop.
            inline=self.inline and bool(getattr(runtime, "inline", False)),
        )
        # One assignment switches manifest, schema, runtime and batcher together.
        self.current = LoadedVersion(manifest, runtime, schema, batcher)
        self.ready = True
        if old is not None:
            self.swaps += 1
            old.retire()

    async def run(self, rows: np.ndarray) -> tuple[Prediction, LoadedVersion]:
        """Predict rows on the current version: no metrics, no log (the shadow's path)."""
        current = self.current
        if current is None:
            raise OverloadedError(f"model {self.name} is still loading: retry in a moment")
        current.in_flight += 1
        try:
            return await current.batcher.submit(rows), current
        finally:
            current.release()

    async def predict(
        self,
        rows: np.ndarray,
        *,
        request_id: str = "",
        client_request_id: str | None = None,
        schema: Schema | None = None,
    ) -> tuple[Prediction, Manifest]:
        """Predict validated rows; returns the prediction and the manifest that served it.

        `schema` is the one the rows were validated with: when a swap to a version with
        other inputs came in between, the request is refused with 503 (retry) rather than
        fed to a model it was not checked for.
        """
        started = time.perf_counter()
        current = self.current
        if current is None:
            raise OverloadedError(f"model {self.name} is still loading: retry in a moment")
        if (schema is not None and schema is not current.schema) or (
            rows.ndim != 2 or rows.shape[1] != current.schema.width
        ):
            checked = schema.manifest if schema is not None else None
            if checked is None or input_signature(checked) != current.signature:
                raise OverloadedError(
                    f"model {self.name} switched to version {current.version} with other "
                    "inputs while this request was read: retry"
                )
        current.in_flight += 1
        try:
            prediction = await current.batcher.submit(rows)
        except TimeoutError:
            raise RequestTimeoutError(
                f"the prediction took longer than --request-timeout "
                f"({self.settings.request_timeout:g} s): retry, or send fewer rows"
            ) from None
        finally:
            current.release()
        manifest = current.manifest
        latency = time.perf_counter() - started
        if not current.schema.all_in_range(rows):
            metrics.count_out_of_range(self.name, manifest, rows)
        metrics.count_predictions(
            self.name, manifest.version, prediction.labels, regression=not self.classifier
        )
        if self.shadow is not None:
            self.shadow(rows, prediction, manifest, request_id, client_request_id)
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
        current, self.current = self.current, None
        if current is not None:
            current.retire()


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
