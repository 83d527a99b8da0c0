"""The report stored with each version: metrics.json and PNG plots under `report/`.

Plots draw on a bare matplotlib Figure with the Agg canvas: no pyplot global state, no
display needed, safe in any thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from tabserve.types import Task

REPORT = "report"
# Permutation importance refits nothing but predicts n_repeats x features times: keep it small.
PERMUTATION_ROWS = 2000
PERMUTATION_REPEATS = 5
TOP_FEATURES = 25


def classification_metrics(
    y_true: pd.Series, y_pred: np.ndarray, classes: list[Any]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and the same per class (keyed by the class as str)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    per_class = {
        str(label): {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for label, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "per_class": per_class,
    }


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE and R² on the test set."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": math.sqrt(float(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(y_true: pd.Series, y_pred: np.ndarray, classes: list[Any]) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted) with the count in each cell."""
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    size = max(4.0, 0.6 * len(classes) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    labels = [str(c) for c in classes]
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (test set)")
    high = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > high else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=color)
    return _png(figure)


def predicted_vs_actual_png(y_true: pd.Series, y_pred: np.ndarray) -> bytes:
    """Predicted against true values on the test set, with the identity line."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.scatter(y_true, y_pred, s=10, alpha=0.6)
    low, high = float(np.min(y_true)), float(np.max(y_true))
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set_xlabel("true")
    axes.set_ylabel("predicted")
    axes.set_title("predicted vs true (test set)")
    return _png(figure)


def feature_importances(
    pipeline: Any, X_test: pd.DataFrame, y_test: pd.Series, random_state: int
) -> tuple[dict[str, float], str]:
    """Importance per feature and how it was measured (model attribute or permutation)."""
    final = pipeline.steps[-1][1]
    names: list[str] = [str(c) for c in X_test.columns]
    if len(pipeline.steps) > 1:
        with contextlib.suppress(AttributeError, ValueError):
            names = [str(n) for n in pipeline[:-1].get_feature_names_out(names)]
    values: np.ndarray | None = None
    method = ""
    if hasattr(final, "feature_importances_"):
        values, method = np.asarray(final.feature_importances_, dtype=float), "feature_importances_"
    elif hasattr(final, "coef_"):
        coef = np.abs(np.atleast_2d(np.asarray(final.coef_, dtype=float)))
        values, method = coef.mean(axis=0), "mean |coef_|"
    if values is not None and len(values) == len(names):
        return dict(zip(names, (float(v) for v in values), strict=True)), method
    from sklearn.inspection import permutation_importance

    rows = min(len(X_test), PERMUTATION_ROWS)
    result = permutation_importance(
        pipeline,
        X_test.iloc[:rows],
        y_test.iloc[:rows],
        n_repeats=PERMUTATION_REPEATS,
        random_state=random_state,
    )
    columns = [str(c) for c in X_test.columns]
    means = (float(v) for v in result.importances_mean)
    return dict(zip(columns, means, strict=True)), "permutation importance (test set)"


def feature_importance_png(importances: dict[str, float], method: str) -> bytes:
    """A horizontal bar chart of the largest importances."""
    from matplotlib.figure import Figure

    ranked = sorted(importances.items(), key=lambda item: abs(item[1]), reverse=True)[:TOP_FEATURES]
    ranked.reverse()  # largest on top
    figure = Figure(figsize=(6, max(2.5, 0.35 * len(ranked) + 1)))
    axes = figure.add_subplot()
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.set_xlabel(method)
    axes.set_title("feature importance")
    return _png(figure)


def report_files(
    *,
    task: Task,
    metrics: dict[str, Any],
    y_test: pd.Series,
    y_pred: np.ndarray,
    classes: list[Any] | None,
    importances: dict[str, float],
    method: str,
) -> dict[str, bytes]:
    """Artifact-relative path -> bytes of every report file."""
    files = {
        f"{REPORT}/metrics.json": json.dumps(
            {**metrics, "feature_importance": {"method": method, "values": importances}},
            indent=2,
            allow_nan=True,
        ).encode()
        + b"\n",
        f"{REPORT}/feature_importance.png": feature_importance_png(importances, method),
    }
    if task == "classification" and classes is not None:
        files[f"{REPORT}/confusion_matrix.png"] = confusion_matrix_png(y_test, y_pred, classes)
    else:
        files[f"{REPORT}/predicted_vs_actual.png"] = predicted_vs_actual_png(y_test, y_pred)
    return files
