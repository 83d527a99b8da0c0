"""The scikit-learn pipeline `tabserve train` fits: the lecture's by default, any estimator on demand.

All-numeric data without missing values gets the lecture's StandardScaler + gradient
boosting. Categories or missing values add a ColumnTransformer (impute, scale, one-hot) in
front, so any tidy CSV trains without preparation.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np
import pandas as pd

from tabserve.errors import UsageError
from tabserve.training.schema import is_numeric
from tabserve.types import Task

# An integer target with at most this many distinct values is a class label.
MAX_INT_CLASSES = 20

DEFAULT_ESTIMATORS: dict[str, str] = {
    "classification": "sklearn.ensemble.GradientBoostingClassifier",
    "regression": "sklearn.ensemble.GradientBoostingRegressor",
}
TASKS = ("classification", "regression")


def infer_task(y: pd.Series, override: str | None = None) -> Task:
    """Classification for str/bool targets and integers with few values, else regression."""
    if override is not None:
        if override not in TASKS:
            raise UsageError(f"unknown task {override!r}: use classification or regression")
        return override  # type: ignore[return-value]
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= MAX_INT_CLASSES:
        return "classification"
    return "regression"


def parse_params(text: str | None) -> dict[str, Any]:
    """The --params JSON object, or a UsageError that shows the expected shape."""
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"--params is not valid JSON ({error.msg} at column {error.colno}): "
            """give an object such as '{"n_estimators": 200}'"""
        ) from error
    if not isinstance(params, dict):
        raise UsageError("""--params must be a JSON object such as '{"n_estimators": 200}'""")
    return params


def resolve_estimator(path: str) -> type:
    """The scikit-learn estimator class at a dotted path; only modules under `sklearn.` load."""
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    module_name, _, class_name = path.rpartition(".")
    hint = "give a scikit-learn estimator such as sklearn.ensemble.RandomForestClassifier"
    # Importing an arbitrary module runs its code: refuse anything outside scikit-learn.
    if not module_name.startswith("sklearn.") or not class_name.isidentifier():
        raise UsageError(f"--estimator {path!r} is not a scikit-learn estimator path: {hint}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"--estimator {path!r}: no module {module_name}: {hint}") from error
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise UsageError(f"--estimator {path!r} is not a scikit-learn estimator: {hint}")
    try:
        probe = cls()
    except TypeError as error:  # estimators with required arguments (e.g. meta-estimators)
        raise UsageError(
            f"--estimator {path!r} needs constructor arguments tabserve can't give: {hint}"
        ) from error
    if not (is_classifier(probe) or is_regressor(probe)):
        raise UsageError(f"--estimator {path!r} is neither a classifier nor a regressor: {hint}")
    return cls


def estimator_task(cls: type) -> Task:
    """Whether an estimator class predicts classes or numbers."""
    from sklearn.base import is_classifier

    return "classification" if is_classifier(cls()) else "regression"


def prepare_features(X: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float/int; everything else as str objects (NaN = missing), as clients send them."""
    prepared = X.copy()
    for column in prepared.columns:
        series = prepared[column]
        if is_numeric(series):
            continue
        # Categories are matched as strings at serving time, so train on strings too.
        values = [np.nan if pd.isna(v) else str(v) for v in series.to_numpy(dtype=object)]
        prepared[column] = pd.Series(values, index=series.index, dtype=object)
    return prepared


def needs_preprocessing(X: pd.DataFrame) -> bool:
    """True when X holds categories or missing values, which need a ColumnTransformer."""
    return any(not is_numeric(X[c]) for c in X.columns) or bool(X.isna().to_numpy().any())


def imputed_columns(X: pd.DataFrame) -> set[str]:
    """Columns the default preprocessing imputes, so clients may send them missing."""
    return {str(c) for c in X.columns} if needs_preprocessing(X) else set()


def _preprocessor(X: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c for c in X.columns if is_numeric(X[c])]
    categories = [c for c in X.columns if c not in numbers]
    parts: list[tuple[str, Any, list[str]]] = []
    if numbers:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        parts.append(("numbers", numeric, numbers))
    if categories:
        # No handle_unknown="ignore": the server refuses an unseen category before the model.
        encode = OneHotEncoder(sparse_output=False)
        categorical = Pipeline(
            [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encode)]
        )
        parts.append(("categories", categorical, categories))
    return ColumnTransformer(parts)


def build_pipeline(
    X: pd.DataFrame, task: Task, estimator: str | None, params: dict[str, Any]
) -> Any:
    """An unfitted Pipeline: preprocessing for X, then the chosen (or default) estimator."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    cls = resolve_estimator(estimator or DEFAULT_ESTIMATORS[task])
    if estimator is not None and estimator_task(cls) != task:
        raise UsageError(
            f"--estimator {estimator} is a {estimator_task(cls)} model but the task is {task}: "
            f"pick a {task} estimator or pass --task {estimator_task(cls)}"
        )
    try:
        final = cls(**params)
    except TypeError as error:
        raise UsageError(f"--params don't fit {cls.__name__}: {error}") from error
    step = "gbm" if estimator is None else cls.__name__.lower()
    if needs_preprocessing(X):
        return Pipeline([("prepare", _preprocessor(X)), (step, final)])
    return Pipeline([("scale", StandardScaler()), (step, final)])
