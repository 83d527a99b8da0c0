"""The fast runtime: the converted pipeline in ONNX Runtime, without scikit-learn, pandas or scipy.

The graph's inputs are fixed by `tabserve.artifacts.convert`: one float64 `[N, n_features]`
tensor named `input` for all-numeric models, else one `[N, 1]` tensor per feature named
`f0`, `f1`, ... (float64 with NaN for missing numbers, strings with "" for missing
categories). Outputs: `label` and `probabilities` (float64) for classifiers, `variable`
(float64 `[N, 1]`) for regressors. InferenceSession.run is thread-safe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tabserve.errors import ArtifactError
from tabserve.types import Manifest, Prediction, RuntimeKind

MODEL_FILE = "model.onnx"
NUMERIC_INPUT = "input"
MISSING_CATEGORY = ""  # the converted imputers treat "" as missing, like NaN in scikit-learn
# Model metadata: "true" when the graph's label is the model's own `predict` rule (boosting,
# artifacts/onnx_boosting.py), so no tie in the probabilities is decided again here.
LABEL_IS_EXACT = "tabserve.label_is_exact"


def feature_input(index: int) -> str:
    """The graph input name of feature `index` for mixed-type models."""
    return f"f{index}"


def _number_column(values: np.ndarray) -> np.ndarray:
    # None converts to NaN in a float64 array, which the converted imputer treats as missing.
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _category_column(values: np.ndarray) -> np.ndarray:
    out = np.empty((len(values), 1), dtype=object)
    for i, value in enumerate(values):
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        out[i, 0] = MISSING_CATEGORY if missing else str(value)
    return out


def numeric_matrix(rows: np.ndarray) -> np.ndarray:
    """Rows as a contiguous float64 matrix (None -> NaN for object input)."""
    if rows.dtype == object:
        return np.array([[np.nan if v is None else v for v in row] for row in rows], np.float64)
    return np.ascontiguousarray(rows, dtype=np.float64)


class OnnxRuntime:
    """A converted model in an onnxruntime.InferenceSession."""

    kind: RuntimeKind = "onnx"
    # Predicts of up to --batch-max-rows rows take microseconds: the batcher calls them on
    # the event loop (see tabserve.serving.batching).
    inline = True

    def __init__(self, model: bytes, manifest: Manifest, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Spinning pool threads would take CPU from the event loop and other workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph kinds
            raise ArtifactError(
                f"{manifest.ref} {MODEL_FILE} does not load in ONNX Runtime ({error}): "
                "re-train or re-import the model"
            ) from error
        self.manifest = manifest
        self.kinds = [f.kind for f in manifest.features]
        self.all_numeric = manifest.all_numeric
        self.classifier = manifest.task == "classification"
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.classes = np.asarray(manifest.classes) if manifest.classes is not None else None
        exact = self.session.get_modelmeta().custom_metadata_map.get(LABEL_IS_EXACT) == "true"
        self.break_ties = self.classifier and not exact
        # The session's C++ run, without the Python wrapper's per-call checks (input names,
        # graph capture, OrtValue ownership: ~10% of a one-row predict). The feeds are built
        # here with exactly the graph's input names, so the checks can never fail.
        inner = getattr(self.session, "_sess", None)
        self._run: Any = inner.run if inner is not None else self.session.run

    def _feeds(self, rows: np.ndarray) -> dict[str, Any]:
        if rows.ndim != 2 or rows.shape[1] != len(self.kinds):
            raise ValueError(f"rows must be [n, {len(self.kinds)}], got {list(rows.shape)}")
        if self.all_numeric:
            return {NUMERIC_INPUT: numeric_matrix(rows)}
        feeds: dict[str, Any] = {}
        for i, kind in enumerate(self.kinds):
            column = rows[:, i]
            feeds[feature_input(i)] = (
                _number_column(column) if kind == "number" else _category_column(column)
            )
        return feeds

    def predict(self, rows: np.ndarray) -> Prediction:
        """Labels (and class probabilities for classifiers) for rows in feature order."""
        session = self.session
        if session is None:
            raise ArtifactError(f"{self.manifest.ref}: the runtime was closed; load it again")
        results = self._run(self.outputs, self._feeds(rows), None)
        if not self.classifier:
            return Prediction(np.asarray(results[0], dtype=np.float64).reshape(-1), None)
        labels = np.asarray(results[0]).reshape(-1)
        proba = np.asarray(results[1], dtype=np.float64)
        classes = self.classes
        if classes is not None:
            labels = labels.astype(classes.dtype, copy=False)
        if classes is not None and self.break_ties:
            # On a tie (a forest's even vote) scikit-learn takes the first class; ONNX may not.
            # Only a row whose label differs from the first most probable class can be such a
            # tie, so the full check runs on those rows alone (usually none).
            first = classes[proba.argmax(axis=1)]
            differ = labels != first
            # count_nonzero, not differ.any(): .any() goes through numpy's Python wrappers and
            # cost ~6 us of a 30 us one-row predict.
            if np.count_nonzero(differ):
                rows_differ = proba[differ]
                top = rows_differ.max(axis=1, keepdims=True)
                tied = np.count_nonzero(rows_differ == top, axis=1) > 1
                index = np.flatnonzero(differ)[tied]
                labels = labels.copy()  # the session's own output array is left untouched
                labels[index] = first[index]
        return Prediction(labels, proba)

    def close(self) -> None:
        """Drop the session (its memory goes when the last predict returns)."""
        self.session = None


def load_onnx(artifact_dir: Path, manifest: Manifest, *, threads: int = 1) -> OnnxRuntime:
    """The ONNX runtime for a verified artifact folder whose manifest names model.onnx."""
    path = artifact_dir / (manifest.runtime.file if manifest.runtime.kind == "onnx" else "")
    if manifest.runtime.kind != "onnx" or not path.is_file():
        reason = manifest.runtime.reason or "the artifact has no model.onnx"
        raise ArtifactError(
            f"{manifest.ref} has no ONNX model ({reason}): serve it with the scikit-learn runtime"
        )
    return OnnxRuntime(path.read_bytes(), manifest, threads=threads)
