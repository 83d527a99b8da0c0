"""The lecture's Iris pipeline, a mixed-type toy model, and an app over them for the serving tests."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabserve.runtime.sklearn import SklearnRuntime
from tabserve.serving.app import create_app
from tabserve.settings import Settings
from tabserve.training.schema import infer_features
from tabserve.types import Manifest, RuntimeInfo

with warnings.catch_warnings():
    # Starlette asks for httpx2 with its TestClient; httpx is what the project pins.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FLOWER = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}


def manifest_for(
    name: str, X: pd.DataFrame, task: str, classes: list[Any] | None, **changes: Any
) -> Manifest:
    """A manifest whose features are inferred from the training frame, as training writes it."""
    fields: dict[str, Any] = {
        "name": name,
        "version": 1,
        "created_at": "2026-11-24T12:00:00Z",
        "task": task,
        "target": "target",
        "features": infer_features(X, nullable=changes.pop("nullable", None)),
        "classes": classes,
        "data_fingerprint": "0" * 64,
        "source": "test",
        "estimator": "sklearn",
        "environment": {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__},
        "runtime": RuntimeInfo(kind="sklearn", file="model.skops"),
    }
    fields.update(changes)
    return Manifest(**fields)


@pytest.fixture(scope="session")
def iris() -> tuple[Manifest, Pipeline]:
    """The lecture's pipeline (StandardScaler + GradientBoosting) fitted on Iris."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("clf", GradientBoostingClassifier(random_state=0))]
    )
    pipeline.fit(X, y)
    return manifest_for("iris", X, "classification", [0, 1, 2]), pipeline


@pytest.fixture(scope="session")
def mixed() -> tuple[Manifest, Pipeline]:
    """A classifier on a number that may be missing and a category: string labels."""
    rng = np.random.default_rng(0)
    n = 200
    X = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, n),
            "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        }
    )
    X.loc[::10, "age"] = np.nan
    y = np.where(X["city"] == "paris", "yes", "no")
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", SimpleImputer(), ["age"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    pipeline.fit(X, y)
    return manifest_for("mixed", X, "classification", ["no", "yes"]), pipeline


@pytest.fixture(scope="session")
def regressor() -> tuple[Manifest, Pipeline]:
    """A linear regressor on two numbers."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x1": rng.normal(size=100), "x2": rng.normal(size=100)})
    y = 2 * X["x1"] - X["x2"]
    pipeline = Pipeline([("lr", LinearRegression())]).fit(X, y)
    return manifest_for("reg", X, "regression", None), pipeline


def make_client(*models: tuple[Manifest, Pipeline], **settings: Any) -> Iterator[TestClient]:
    """A TestClient over create_app with these in-memory models (prediction log off)."""
    conf = Settings(prediction_log=False, **settings)
    app = create_app(conf, models=[(m, SklearnRuntime(p, m)) for m, p in models])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(iris: tuple[Manifest, Pipeline]) -> Iterator[TestClient]:
    """The app serving the lecture's Iris model alone."""
    yield from make_client(iris)


@pytest.fixture
def multi(
    iris: tuple[Manifest, Pipeline],
    mixed: tuple[Manifest, Pipeline],
    regressor: tuple[Manifest, Pipeline],
) -> Iterator[TestClient]:
    """The app serving three models, no default."""
    yield from make_client(iris, mixed, regressor)
