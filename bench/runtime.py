"""In-process predict cost of the scikit-learn and ONNX runtimes on the lecture's Iris pipeline.

    .venv/bin/python bench/runtime.py [--seconds 0.3]

Fits the lecture's pipeline (StandardScaler + GradientBoostingClassifier) on Iris, converts
it with tabserve's converter (parity checked), and times `predict` on 1, 64, 1,000 and
10,000 rows for both runtimes (median of repeated calls, each size for about --seconds).
Prints one table and the parity figures. Runs in a few seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SIZES = (1, 64, 1_000, 10_000)


def _iris() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_iris

    from tabserve.training import schema
    from tabserve.training.pipeline import build_pipeline
    from tabserve.types import Manifest, RuntimeInfo

    X, y = load_iris(return_X_y=True, as_frame=True)
    pipeline = build_pipeline(X, "classification", None, {}).fit(X, y)
    manifest = Manifest(
        name="iris",
        version=1,
        created_at="",
        task="classification",
        target="target",
        features=schema.infer_features(X, list(X.columns)),
        classes=pipeline.classes_.tolist(),
        data_fingerprint="",
        source="iris",
        estimator="sklearn.ensemble.GradientBoostingClassifier",
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )
    return pipeline, manifest, X


def _time(predict: Any, rows: np.ndarray, seconds: float) -> float:
    """Median seconds per call, over calls made for about `seconds` (at least 3)."""
    predict(rows)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        predict(rows)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    """Print the runtime table and the parity figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="time spent per size")
    args = parser.parse_args()

    from tabserve.artifacts.convert import to_onnx
    from tabserve.runtime.onnx import OnnxRuntime
    from tabserve.runtime.sklearn import SklearnRuntime

    pipeline, manifest, X = _iris()
    start = time.perf_counter()
    model, info = to_onnx(pipeline, manifest, X)
    convert_s = time.perf_counter() - start
    if model is None:
        raise SystemExit(f"conversion fell back to scikit-learn: {info.reason}")
    runtimes = {
        "sklearn": SklearnRuntime(pipeline, manifest, threads=1),
        "onnx": OnnxRuntime(model, manifest, threads=1),
    }
    rng = np.random.default_rng(0)
    data = X.to_numpy(dtype=np.float64)
    print(f"{'runtime':<8} {'rows':>7} {'µs/call':>11} {'rows/s':>13}")
    for size in SIZES:
        rows = np.ascontiguousarray(data[rng.integers(0, len(data), size)])
        for name, runtime in runtimes.items():
            per_call = _time(runtime.predict, rows, args.seconds)
            print(f"{name:<8} {size:>7} {per_call * 1e6:>11.1f} {size / per_call:>13,.0f}")
        same = np.array_equal(
            runtimes["sklearn"].predict(rows).labels, runtimes["onnx"].predict(rows).labels
        )
        print(f"{'':<8} {size:>7} labels equal: {same}")
    parity = info.parity or {}
    print(
        f"parity: {parity.get('rows')} rows ({parity.get('check_rows')} Iris, "
        f"{parity.get('random_rows')} random, {parity.get('threshold_rows')} on split "
        f"thresholds), {parity.get('label_mismatches')} label mismatches, "
        f"max |Δproba| {parity.get('max_abs_proba_diff', float('nan')):.2g}; "
        f"conversion + check {convert_s:.2f} s; ONNX model {len(model):,} bytes"
    )


if __name__ == "__main__":
    main()
