"""Choosing the task, the estimator and the preprocessing of a training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabserve.errors import UsageError
from tabserve.training.pipeline import (
    build_pipeline,
    imputed_columns,
    infer_task,
    parse_params,
    prepare_features,
)

NUMBERS = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
MIXED = pd.DataFrame({"a": [1.0, np.nan, 3.0], "c": ["x", "y", None], "f": [True, False, True]})


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (pd.Series([0, 1, 2, 1]), "classification"),
        (pd.Series(["a", "b"]), "classification"),
        (pd.Series([True, False]), "classification"),
        (pd.Series(range(100)), "regression"),
        (pd.Series([0.5, 1.5, 2.5]), "regression"),
    ],
)
def test_task_follows_the_target(y: pd.Series, task: str) -> None:
    assert infer_task(y) == task


def test_task_flag_overrides_and_is_checked() -> None:
    assert infer_task(pd.Series([0, 1]), "regression") == "regression"
    with pytest.raises(UsageError, match="unknown task"):
        infer_task(pd.Series([0, 1]), "clustering")


def test_default_is_the_lectures_pipeline() -> None:
    model = build_pipeline(NUMBERS, "classification", None, {})
    assert [name for name, _ in model.steps] == ["scale", "gbm"]
    assert isinstance(model.steps[0][1], StandardScaler)
    assert isinstance(model.steps[1][1], GradientBoostingClassifier)
    regressor = build_pipeline(NUMBERS, "regression", None, {})
    assert isinstance(regressor.steps[-1][1], GradientBoostingRegressor)
    assert imputed_columns(NUMBERS) == set()


def test_categories_and_missing_values_get_a_column_transformer() -> None:
    X = prepare_features(MIXED)
    model = build_pipeline(X, "classification", None, {})
    prepare = model.steps[0][1]
    assert isinstance(prepare, ColumnTransformer)
    columns = {name: cols for name, _, cols in prepare.transformers}
    assert columns == {"numbers": ["a"], "categories": ["c", "f"]}
    encoder = prepare.transformers[1][1].steps[-1][1]
    assert isinstance(encoder, OneHotEncoder) and encoder.handle_unknown == "error"
    assert imputed_columns(X) == {"a", "c", "f"}
    model.fit(X, [0, 1, 0])
    assert list(model.predict(X)) == [0, 1, 0]


def test_categories_are_trained_as_strings() -> None:
    X = prepare_features(MIXED)
    assert X["f"].tolist() == ["True", "False", "True"]
    assert pd.isna(X["c"].iloc[2]) and X["c"].dtype == object
    assert X["a"].dtype == "float64"


def test_estimator_and_params_replace_the_final_step() -> None:
    model = build_pipeline(
        NUMBERS, "classification", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 7}
    )
    final = model.steps[-1][1]
    assert isinstance(final, RandomForestClassifier) and final.n_estimators == 7


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("os.system", "not a scikit-learn estimator path"),
        ("tabserve.cli.app", "not a scikit-learn estimator path"),
        ("sklearn.nothing.Here", "no module"),
        ("sklearn.metrics.accuracy_score", "not a scikit-learn estimator"),
        ("sklearn.preprocessing.StandardScaler", "neither a classifier nor a regressor"),
        ("sklearn.ensemble.VotingClassifier", "constructor arguments"),
    ],
)
def test_only_scikit_learn_estimators_are_accepted(path: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        build_pipeline(NUMBERS, "classification", path, {})


def test_estimator_must_fit_the_task_and_params_the_estimator() -> None:
    with pytest.raises(UsageError, match="--task regression"):
        build_pipeline(NUMBERS, "classification", "sklearn.linear_model.LinearRegression", {})
    with pytest.raises(UsageError, match="--params don't fit"):
        build_pipeline(NUMBERS, "classification", "sklearn.tree.DecisionTreeClassifier", {"x": 1})


def test_params_must_be_a_json_object() -> None:
    assert parse_params('{"n_estimators": 200}') == {"n_estimators": 200}
    assert parse_params(None) == {}
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_params("{n_estimators: 200}")
    with pytest.raises(UsageError, match="must be a JSON object"):
        parse_params("[1, 2]")
