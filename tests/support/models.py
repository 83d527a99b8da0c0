"""Iris models for tests: the default one trained for real, hand-built artifacts, the lecture's pickle.

`train_iris` goes through `tabserve.training` exactly as `tabserve train` does (ONNX runtime,
metrics, plots); `register_iris` publishes a scikit-learn pipeline fitted on all of Iris as a
skops artifact, for tests that rely on a known estimator; `write_lecture_pickle` builds the
lecture's model.pickle as its `build_model.py` does.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import sklearn
from sklearn import datasets
from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tabserve.artifacts import store
from tabserve.artifacts.local import LocalRegistry
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
from tabserve.training.schema import infer_features
from tabserve.training.train import TrainSpec, train
from tabserve.types import Manifest, RuntimeInfo

__all__ = [
    "NAMES",
    "copy_home",
    "iris_frame",
    "promote",
    "publish",
    "register_iris",
    "train_iris",
    "write_lecture_pickle",
]

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train_iris(home: Path) -> tuple[Manifest, Path]:
    """The default model trained by `tabserve.training` into home's registry: (manifest, folder)."""
    settings = Settings(home=home, registry_url=None)
    result = train(TrainSpec(), settings)
    with LocalRegistry.open(settings) as registry:
        return registry.fetch(result.manifest.ref)


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    """All 150 Iris rows with the lecture's column names, and the class of each."""
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    return X, y


def _estimator_path(estimator: object) -> str:
    """`sklearn.ensemble.GradientBoostingClassifier`: the public import path, private modules dropped."""
    kind = type(estimator)
    module = ".".join(part for part in kind.__module__.split(".") if not part.startswith("_"))
    return f"{module}.{kind.__qualname__}"


def publish(
    home: Path,
    pipeline: Pipeline,
    X: pd.DataFrame,
    *,
    name: str = "iris",
    classes: Sequence[int | str] = (0, 1, 2),
    source: str = "iris",
) -> Manifest:
    """Publish a classifier pipeline fitted on X as the next version of `name` in home's registry."""
    manifest = Manifest(
        name=name,
        version=0,
        created_at="2026-11-24T12:00:00Z",
        task="classification",
        target="target",
        features=infer_features(X),
        classes=list(classes),
        data_fingerprint="0" * 64,
        source=source,
        estimator=_estimator_path(pipeline.steps[-1][1]),
        environment={"python": sys.version.split()[0], "scikit-learn": sklearn.__version__},
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )
    staged = store.stage(manifest=manifest, pipeline=pipeline, files={}, home=home)
    with open_registry(Settings(home=home)) as registry:
        return registry.publish(staged)


def register_iris(home: Path, classifier: BaseEstimator | None = None) -> Manifest:
    """StandardScaler + classifier (the lecture's GradientBoosting by default) fitted on Iris, published."""
    X, y = iris_frame()
    clf = GradientBoostingClassifier(random_state=0) if classifier is None else classifier
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(X, y)
    return publish(home, pipeline, X)


def promote(home: Path, ref: str) -> None:
    """`tabserve models promote REF production` in another process, as an operator runs it."""
    subprocess.run(
        [sys.executable, "-m", "tabserve", "models", "promote", ref, "production"],
        env={"TABSERVE_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def copy_home(registry: Path, home: Path) -> Path:
    """A fresh TABSERVE_HOME holding a copy of `registry`'s models (each server logs into its own)."""
    shutil.copytree(registry, home, symlinks=True)
    for leftover in ("predictions.db", "predictions.db-wal", "predictions.db-shm", "spool"):
        target = home / leftover
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    return home


def write_lecture_pickle(path: Path) -> Path:
    """model.pickle exactly as the lecture builds it: Pipeline(StandardScaler, GradientBoosting)."""
    iris = datasets.load_iris()
    df_iris = pd.DataFrame(data=iris["data"], columns=iris["feature_names"])
    df_iris["target"] = iris["target"]
    df_train, _ = train_test_split(
        df_iris, test_size=0.3, random_state=47, stratify=df_iris["target"]
    )
    model = Pipeline([("scale", StandardScaler()), ("gbm", GradientBoostingClassifier())])
    model.fit(df_train[iris["feature_names"]], df_train["target"])
    with path.open("wb") as f:
        pickle.dump(model, f)
    return path
