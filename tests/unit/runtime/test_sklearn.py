"""The scikit-learn runtime: rows become the training DataFrame; thread limits hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tests.unit.runtime import models

from tabserve.runtime.sklearn import SklearnRuntime


def test_object_rows_with_none_match_the_pipeline_on_nan(shop_model: models.Fitted) -> None:
    runtime = SklearnRuntime(shop_model.pipeline, shop_model.manifest, threads=None)
    rows = models.object_rows(shop_model.X, shop_model.manifest)
    got = runtime.predict(rows)
    np.testing.assert_array_equal(got.labels, shop_model.pipeline.predict(shop_model.X))
    assert got.labels.dtype.kind == "U"
    assert got.proba is not None
    np.testing.assert_array_equal(got.proba, shop_model.pipeline.predict_proba(shop_model.X))


def test_frame_has_model_columns_and_training_dtypes() -> None:
    X = pd.DataFrame({"count": [1, 2, 3, 4, 5, 6] * 5, "kind": ["a", "b", "c"] * 10})
    y = pd.Series(["x", "y"] * 15)
    fitted = models.fit(X, y, "classification", n_estimators=5)
    runtime = SklearnRuntime(fitted.pipeline, fitted.manifest, threads=None)
    frame = runtime.frame(np.array([[2.0, "a"], [None, None]], dtype=object))
    assert list(frame.columns) == ["count", "kind"]
    assert frame["kind"].dtype == object and pd.isna(frame["kind"][1])
    assert np.isnan(frame["count"][1])
    whole = runtime.frame(np.array([[2.0, "a"], [3.0, "b"]], dtype=object))
    assert whole["count"].dtype == np.int64


def test_regression_and_integer_labels(iris_model: models.Fitted) -> None:
    runtime = SklearnRuntime(iris_model.pipeline, iris_model.manifest)
    got = runtime.predict(iris_model.X.to_numpy(dtype=np.float64)[:3])
    assert got.labels.dtype == np.int64
    fitted = models.fit(*models.diabetes(), "regression", n_estimators=5)
    value = SklearnRuntime(fitted.pipeline, fitted.manifest).predict(
        fitted.X.to_numpy(dtype=np.float64)[:3]
    )
    assert value.proba is None and value.labels.dtype == np.float64


def test_forest_jobs_capped_to_the_worker_threads() -> None:
    fitted = models.fit(
        *models.iris(), "classification", "sklearn.ensemble.RandomForestClassifier",
        n_estimators=5, n_jobs=-1,
    )  # fmt: skip
    SklearnRuntime(fitted.pipeline, fitted.manifest, threads=1)
    assert fitted.pipeline[-1].n_jobs == 1
