"""Runtimes: a loaded model behind `tabserve.types.Runtime` (predict arrays, close).

onnx.py      the converted pipeline in ONNX Runtime; imports no scikit-learn, pandas or scipy
sklearn.py   the artifact's scikit-learn pipeline, for models that did not convert with parity
threads.py   per-worker BLAS/OpenMP thread limits

`load_runtime` picks the runtime the manifest names (or `prefer`) from the plain dict RUNTIMES.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tabserve.errors import UsageError
from tabserve.types import Manifest, Runtime

Loader = Callable[..., Runtime]


def _load_onnx(artifact_dir: Path, manifest: Manifest, *, threads: int) -> Runtime:
    from tabserve.runtime.onnx import load_onnx

    return load_onnx(artifact_dir, manifest, threads=threads)


def _load_sklearn(artifact_dir: Path, manifest: Manifest, *, threads: int) -> Runtime:
    from tabserve.runtime.sklearn import load_sklearn

    return load_sklearn(artifact_dir, manifest, threads=threads)


RUNTIMES: dict[str, Loader] = {"onnx": _load_onnx, "sklearn": _load_sklearn}

__all__ = ["RUNTIMES", "load_runtime"]


def load_runtime(
    artifact_dir: Path, manifest: Manifest, *, threads: int = 1, prefer: str | None = None
) -> Runtime:
    """Load the runtime the manifest names (or `prefer`) from a verified artifact folder."""
    kind = prefer or manifest.runtime.kind
    loader = RUNTIMES.get(kind)
    if loader is None:
        raise UsageError(f"unknown runtime {kind!r}: use one of {', '.join(sorted(RUNTIMES))}")
    return loader(artifact_dir, manifest, threads=threads)
