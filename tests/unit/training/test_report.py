"""Metrics and plots stored in each version's report folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tabserve.training.report import (
    classification_metrics,
    feature_importances,
    regression_metrics,
    report_files,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_classification_metrics_per_class_and_macro() -> None:
    y_true = pd.Series(["a", "a", "b", "b"])
    metrics = classification_metrics(y_true, np.array(["a", "b", "b", "b"]), ["a", "b"])
    assert metrics["accuracy"] == 0.75
    assert metrics["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert metrics["recall_macro"] == pytest.approx(0.75)


def test_regression_metrics() -> None:
    metrics = regression_metrics(pd.Series([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert metrics["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert metrics["mae"] == pytest.approx(2 / 3)
    assert metrics["r2"] == pytest.approx(1 - 4 / 2)


def _fitted(estimator: object) -> tuple[Pipeline, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"signal": rng.normal(size=80), "noise": rng.normal(size=80)})
    y = pd.Series((X["signal"] > 0).astype(int))
    return Pipeline([("scale", StandardScaler()), ("m", estimator)]).fit(X, y), X, y


def test_importance_from_coefficients_or_permutation() -> None:
    model, X, y = _fitted(LogisticRegression())
    values, method = feature_importances(model, X, y, 0)
    assert method == "mean |coef_|" and values["signal"] > values["noise"]
    model, X, y = _fitted(KNeighborsClassifier())
    values, method = feature_importances(model, X, y, 0)
    assert method.startswith("permutation") and values["signal"] > values["noise"]


def test_report_files_are_json_and_pngs() -> None:
    y = pd.Series([0, 1, 1])
    files = report_files(
        task="classification",
        metrics={"accuracy": 1.0},
        y_test=y,
        y_pred=y.to_numpy(),
        classes=[0, 1],
        importances={"x": 1.0},
        method="feature_importances_",
    )
    assert set(files) == {
        "report/metrics.json",
        "report/confusion_matrix.png",
        "report/feature_importance.png",
    }
    assert json.loads(files["report/metrics.json"])["feature_importance"]["values"] == {"x": 1.0}
    assert files["report/confusion_matrix.png"].startswith(PNG)
    regression = report_files(
        task="regression",
        metrics={"rmse": 0.1},
        y_test=pd.Series([1.0, 2.0]),
        y_pred=np.array([1.1, 1.9]),
        classes=None,
        importances={"x": 1.0},
        method="feature_importances_",
    )
    assert regression["report/predicted_vs_actual.png"].startswith(PNG)
