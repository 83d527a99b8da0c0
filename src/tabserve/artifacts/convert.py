"""Convert a fitted pipeline to ONNX, and keep it only if it answers exactly as scikit-learn does.

skl2onnx converts the pipeline in float64, then the graph is fixed up so that it computes what
scikit-learn computes (measured: ../shared/PERFORMANCE-NOTES.md):

- preprocessing runs in float64 (imputers are our own converter: skl2onnx's stores medians
  in float32 and refuses NaN as the missing marker of string columns);
- tree ensembles keep their thresholds and leaf values in float64 (`*_as_tensor`), get their
  input rounded to float32 and back (scikit-learn's trees compare `float32(x)`) and sum in
  double; a regressor's becomes ai.onnx.ml 5's `TreeEnsemble`, whose output is double (its
  values are scikit-learn's to ~1e-15 relative), a classifier's float output is cast to
  float64 (skl2onnx's float64 graph does not load in ONNX Runtime without that cast);
- gradient boosting classifiers and HistGradientBoosting models get tabserve's own converter
  (onnx_boosting.py): one double TreeEnsemble and the loss's link, float64 from end to end.

The converted model is then run on the check rows (training + test, random rows within and
just outside the training range, rows on every split threshold) and must give every label of
scikit-learn's `predict`, probabilities within 1e-6 and values within 1e-6 relative. If not,
or if conversion fails, the artifact keeps the scikit-learn runtime and the manifest says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabserve.artifacts.check_rows import check_frame, rows_from_frame
from tabserve.types import Manifest, RuntimeInfo

ONNX_FILE = "model.onnx"
SKLEARN_FILE = "model.skops"
OPSET = {"": 17, "ai.onnx.ml": 3}
PROBA_TOLERANCE = 1e-6
VALUE_RTOL = 1e-6

__all__ = ["ONNX_FILE", "build", "check_parity", "to_onnx"]


def to_onnx(
    pipeline: object, manifest: Manifest, X_check: pd.DataFrame
) -> tuple[bytes | None, RuntimeInfo]:
    """ONNX bytes and RuntimeInfo(kind="onnx") when parity holds, else (None, the sklearn runtime)."""
    # Any converter or runtime error means "keep scikit-learn": never fail training over it.
    try:
        model = build(pipeline, manifest)
    except Exception as error:
        return None, _fallback(
            f"skl2onnx could not convert {_describe(pipeline)}: {type(error).__name__}: "
            f"{_first_line(error)}"
        )
    try:
        parity = check_parity(pipeline, manifest, model, X_check)
    except Exception as error:
        return None, _fallback(
            f"the converted model failed on the check rows: {type(error).__name__}: {error}"
        )
    problem = parity_problem(parity)
    if problem is not None:
        return None, _fallback(f"ONNX parity failed on {parity['rows']} rows: {problem}")
    return model, RuntimeInfo(kind="onnx", file=ONNX_FILE, parity=parity)


def _first_line(error: Exception) -> str:
    """An error's first line: skl2onnx's messages can go on with every attribute of a node."""
    lines = str(error).strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""


def _fallback(reason: str) -> RuntimeInfo:
    return RuntimeInfo(kind="sklearn", file=SKLEARN_FILE, reason=reason[:500])


def _describe(pipeline: object) -> str:
    steps = getattr(pipeline, "steps", None)
    if steps:
        return " + ".join(type(step).__name__ for _, step in steps)
    return type(pipeline).__name__


def parity_problem(parity: dict[str, Any]) -> str | None:
    """What exceeds the parity bar, or None when every answer matches."""
    problems = []
    if parity.get("label_mismatches", 0):
        problems.append(f"{parity['label_mismatches']} labels differ from scikit-learn's")
    diff = parity.get("max_abs_proba_diff")
    if diff is not None and not diff <= PROBA_TOLERANCE:
        problems.append(f"probabilities differ by up to {diff:.3g} (limit {PROBA_TOLERANCE:g})")
    rel = parity.get("max_rel_value_diff")
    if rel is not None and not rel <= VALUE_RTOL:
        problems.append(f"values differ by up to {rel:.3g} relative (limit {VALUE_RTOL:g})")
    return "; ".join(problems) or None


def check_parity(
    pipeline: object, manifest: Manifest, model: bytes, X_check: pd.DataFrame
) -> dict[str, Any]:
    """Run both runtimes on the check rows and measure how far apart they are."""
    from tabserve.runtime.onnx import OnnxRuntime
    from tabserve.runtime.sklearn import SklearnRuntime

    frame, counts = check_frame(pipeline, manifest, X_check)
    rows = rows_from_frame(frame, manifest)
    expected = SklearnRuntime(pipeline, manifest, threads=None).predict(rows)
    runtime = OnnxRuntime(model, manifest)
    try:
        got = runtime.predict(rows)
    finally:
        runtime.close()
    parity: dict[str, Any] = {"rows": len(rows), **counts}
    if manifest.task == "classification":
        parity["label_mismatches"] = int(np.sum(expected.labels != got.labels))
        if expected.proba is not None and got.proba is not None:
            parity["max_abs_proba_diff"] = float(np.max(np.abs(expected.proba - got.proba)))
        return parity
    want = expected.labels.astype(np.float64)
    diff = np.abs(want - got.labels)
    scale = np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    parity["label_mismatches"] = 0
    parity["max_rel_value_diff"] = float(np.max(diff / scale)) if len(diff) else 0.0
    parity["max_abs_value_diff"] = float(np.max(diff)) if len(diff) else 0.0
    return parity


def build(pipeline: object, manifest: Manifest) -> bytes:
    """The pipeline as ONNX bytes with tabserve's inputs and outputs (see runtime.onnx)."""
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.impute import SimpleImputer

    from tabserve.artifacts.onnx_boosting import boosting_converters
    from tabserve.artifacts.onnx_graph import (
        ML_DOUBLE_TREES,
        convert_imputer,
        double_tree_converters,
        finish_outputs,
        fix_tree_ensembles,
        name_feature_inputs,
        split_numeric_input,
        uses_double_trees,
    )
    from tabserve.runtime.onnx import LABEL_IS_EXACT, MISSING_CATEGORY, NUMERIC_INPUT

    features = manifest.features
    for f in features:
        if MISSING_CATEGORY in (f.categories or []):
            raise ValueError(f"feature {f.name!r} has the empty string as a category")
    single = manifest.all_numeric and not _starts_with_column_transformer(pipeline)
    if single:
        initial: list[tuple[str, Any]] = [(NUMERIC_INPUT, DoubleTensorType([None, len(features)]))]
    else:
        initial = [
            (
                f.column,
                DoubleTensorType([None, 1]) if f.kind == "number" else StringTensorType([None, 1]),
            )
            for f in features
        ]
    classifier = manifest.task == "classification"
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    options = {id(final): {"zipmap": False}} if classifier else None
    trees = double_tree_converters()
    onx = convert_sklearn(
        pipeline,
        initial_types=initial,
        options=options,
        target_opset=OPSET,
        custom_conversion_functions={
            SimpleImputer: convert_imputer,
            **trees,
            **boosting_converters(fallbacks=trees),
        },
    )
    # Double `*_as_tensor` tree attributes need ai.onnx.ml 3; skl2onnx declares the lowest it used.
    for opset in onx.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, OPSET["ai.onnx.ml"])
    fix_tree_ensembles(onx.graph)
    double_trees = uses_double_trees(onx.graph)
    if double_trees:
        for opset in onx.opset_import:
            if opset.domain == "ai.onnx.ml":
                opset.version = ML_DOUBLE_TREES
    if not single:
        name_feature_inputs(onx.graph, len(features))
        if manifest.all_numeric:
            split_numeric_input(onx.graph, len(features))
    finish_outputs(onx.graph, classifier)
    if classifier and double_trees:  # only onnx_boosting writes those
        helper.set_model_props(onx, {LABEL_IS_EXACT: "true"})
    data: bytes = onx.SerializeToString()
    return data


def _starts_with_column_transformer(pipeline: object) -> bool:
    from sklearn.compose import ColumnTransformer

    steps = getattr(pipeline, "steps", None)
    first = steps[0][1] if steps else pipeline
    return isinstance(first, ColumnTransformer)
