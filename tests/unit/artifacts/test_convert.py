"""to_onnx: convert where every answer matches scikit-learn's, fall back (with why) where not."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper
from sklearn.ensemble import HistGradientBoostingClassifier
from tests.unit.runtime import models

from tabserve.artifacts import check_rows, convert, onnx_boosting, onnx_graph
from tabserve.artifacts.check_rows import check_frame, tree_splits
from tabserve.runtime.onnx import OnnxRuntime
from tabserve.types import Prediction

HGB_C = "sklearn.ensemble.HistGradientBoostingClassifier"
HGB_R = "sklearn.ensemble.HistGradientBoostingRegressor"


def _iris_str() -> tuple[pd.DataFrame, pd.Series]:
    X, y = models.iris()
    return X, pd.Series(np.array(["setosa", "versicolor", "virginica"])[y])


CASES: dict[str, Any] = {
    "lecture default on iris": lambda: models.fit(*models.iris(), "classification"),
    "random forest classifier": lambda: models.fit(
        *models.iris(), "classification", "sklearn.ensemble.RandomForestClassifier", n_estimators=20
    ),
    "logistic regression": lambda: models.fit(
        *models.iris(), "classification", "sklearn.linear_model.LogisticRegression"
    ),
    "string labels": lambda: models.fit(*_iris_str(), "classification", n_estimators=30),
    "binary": lambda: models.fit(
        models.iris()[0], (models.iris()[1] == 1).astype(int), "classification", n_estimators=30
    ),
    "gradient boosting regressor": lambda: models.fit(*models.diabetes(), "regression"),
    "random forest regressor": lambda: models.fit(
        *models.diabetes(), "regression", "sklearn.ensemble.RandomForestRegressor", n_estimators=5
    ),
    "column transformer classifier": lambda: models.fit(
        models.shop()[0], models.shop()[1], "classification", n_estimators=30
    ),
    "column transformer regressor": lambda: models.fit(
        models.shop()[0], models.shop()[2], "regression", n_estimators=30
    ),
    "column transformer forest": lambda: models.fit(
        models.shop()[0],
        models.shop()[1],
        "classification",
        "sklearn.ensemble.RandomForestClassifier",
        n_estimators=10,
    ),
    "hist gradient boosting": lambda: models.fit(
        *models.iris(), "classification", HGB_C, max_iter=30
    ),
    "hist gradient boosting binary": lambda: models.fit(
        models.iris()[0], (models.iris()[1] == 1).astype(int), "classification", HGB_C, max_iter=30
    ),
    "hist gradient boosting string labels": lambda: models.fit(
        *_iris_str(), "classification", HGB_C, max_iter=20
    ),
    "column transformer hist gradient boosting": lambda: models.fit(
        models.shop()[0], models.shop()[1], "classification", HGB_C, max_iter=30
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_converts_with_exact_parity(case: str) -> None:
    fitted = CASES[case]()
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert info.reason is None, info.reason
    assert model is not None and info.kind == "onnx" and info.file == "model.onnx"
    parity = info.parity or {}
    assert parity["label_mismatches"] == 0
    assert parity["rows"] == len(fitted.X) + parity["random_rows"] + parity["threshold_rows"]
    if fitted.manifest.task == "classification":
        assert parity["max_abs_proba_diff"] <= 1e-6
    else:
        assert parity["max_rel_value_diff"] <= 1e-6
    if "logistic" not in case:
        assert parity["threshold_rows"] > 0


def test_iris_answers_match_sklearn_row_by_row() -> None:
    fitted = models.fit(*models.iris(), "classification")
    model, _ = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is not None
    rows = fitted.X.to_numpy(dtype=np.float64)
    got = OnnxRuntime(model, fitted.manifest).predict(rows)
    np.testing.assert_array_equal(got.labels, fitted.pipeline.predict(fitted.X))
    assert got.labels.dtype == np.int64
    assert got.proba is not None
    np.testing.assert_allclose(
        got.proba, fitted.pipeline.predict_proba(fitted.X), atol=1e-6, rtol=0
    )


REGRESSORS: dict[str, Any] = {
    "gradient boosting": lambda: models.fit(*models.diabetes(), "regression"),
    "random forest": lambda: models.fit(
        *models.diabetes(), "regression", "sklearn.ensemble.RandomForestRegressor", n_estimators=5
    ),
    "extra trees": lambda: models.fit(
        *models.diabetes(), "regression", "sklearn.ensemble.ExtraTreesRegressor", n_estimators=5
    ),
    "decision tree": lambda: models.fit(
        *models.diabetes(), "regression", "sklearn.tree.DecisionTreeRegressor", max_depth=6
    ),
    "one-leaf trees": lambda: models.fit(  # a constant target: every tree is a single leaf
        models.diabetes()[0], pd.Series(np.full(len(models.diabetes()[0]), 3.25)), "regression"
    ),
    "column transformer": lambda: models.fit(
        models.shop()[0], models.shop()[2], "regression", n_estimators=30
    ),
    "hist gradient boosting": lambda: models.fit(*models.diabetes(), "regression", HGB_R),
    "hist gradient boosting, poisson loss (exp link)": lambda: models.fit(
        *models.diabetes(), "regression", HGB_R, loss="poisson", max_iter=50
    ),
    "hist gradient boosting one-leaf trees": lambda: models.fit(  # no split has enough rows
        *models.diabetes(), "regression", HGB_R, max_iter=5, min_samples_leaf=300
    ),
    "column transformer hist gradient boosting": lambda: models.fit(
        models.shop()[0], models.shop()[2], "regression", HGB_R, max_iter=30
    ),
}


def _double_trees_on_check_rows(
    fitted: models.Fitted,
) -> tuple[dict[str, Any], pd.DataFrame, Prediction]:
    """Convert (only double TreeEnsemble trees, ai.onnx.ml 5), then predict every check row."""
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is not None, info.reason
    graph = onnx.load_from_string(model)
    ops = {n.op_type for n in graph.graph.node}
    assert "TreeEnsemble" in ops and not ops & {"TreeEnsembleClassifier", "TreeEnsembleRegressor"}
    assert {o.domain: o.version for o in graph.opset_import}["ai.onnx.ml"] == 5
    X, _ = check_frame(fitted.pipeline, fitted.manifest, fitted.X)  # + random, threshold rows
    got = OnnxRuntime(model, fitted.manifest).predict(
        check_rows.rows_from_frame(X, fitted.manifest)
    )
    return info.parity or {}, X, got


@pytest.mark.parametrize("case", list(REGRESSORS))
def test_tree_regressors_predict_scikit_learns_values_in_double(case: str) -> None:
    """Not float32-rounded: the served value is scikit-learn's to ~1e-15 relative."""
    fitted = REGRESSORS[case]()
    parity, X, got = _double_trees_on_check_rows(fitted)
    assert got.labels.dtype == np.float64
    np.testing.assert_allclose(got.labels, fitted.pipeline.predict(X), rtol=1e-12, atol=1e-12)
    assert parity["max_rel_value_diff"] <= 1e-12


BOOSTED_CLASSIFIERS: dict[str, Any] = {
    "lecture default (multiclass)": lambda: models.fit(*models.iris(), "classification"),
    "binary": lambda: models.fit(
        models.iris()[0], (models.iris()[1] == 2).astype(int), "classification", n_estimators=50
    ),
    "string labels": lambda: models.fit(*_iris_str(), "classification", n_estimators=30),
    "hist gradient boosting": lambda: models.fit(*models.iris(), "classification", HGB_C),
}


@pytest.mark.parametrize("case", list(BOOSTED_CLASSIFIERS))
def test_boosted_classifiers_answer_scikit_learns_probabilities_in_double(case: str) -> None:
    """One double TreeEnsemble and the loss's link: probabilities to ~1e-16, not float's 1e-7."""
    fitted = BOOSTED_CLASSIFIERS[case]()
    parity, X, got = _double_trees_on_check_rows(fitted)
    np.testing.assert_array_equal(got.labels, fitted.pipeline.predict(X))
    assert got.proba is not None
    np.testing.assert_allclose(got.proba, fitted.pipeline.predict_proba(X), rtol=0, atol=1e-12)
    assert parity["max_abs_proba_diff"] <= 1e-12


def test_gradient_boosting_with_an_init_estimator_keeps_scikit_learn_and_says_why() -> None:
    from sklearn.linear_model import LogisticRegression

    fitted = models.fit(
        *models.iris(), "classification", init=LogisticRegression(), n_estimators=10
    )
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is None and info.kind == "sklearn"
    assert info.reason is not None and "init" in info.reason


def test_graph_inputs_and_outputs() -> None:
    iris = models.fit(*models.iris(), "classification", n_estimators=5)
    shop = models.fit(models.shop()[0], models.shop()[2], "regression", n_estimators=5)
    iris_graph = onnx.load_from_string(convert.build(iris.pipeline, iris.manifest)).graph
    shop_graph = onnx.load_from_string(convert.build(shop.pipeline, shop.manifest)).graph
    assert [i.name for i in iris_graph.input] == ["input"]
    assert iris_graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [o.name for o in iris_graph.output] == ["label", "probabilities"]
    assert [i.name for i in shop_graph.input] == ["f0", "f1", "f2", "f3"]
    kinds = [i.type.tensor_type.elem_type for i in shop_graph.input]
    assert kinds == [onnx.TensorProto.DOUBLE] * 2 + [onnx.TensorProto.STRING] * 2
    assert [o.name for o in shop_graph.output] == ["variable"]


def test_all_numeric_column_transformer_takes_one_matrix() -> None:
    X, y = models.iris()
    X = X.copy()
    X.iloc[::9, 2] = np.nan  # missing values add the ColumnTransformer (imputer) in front
    fitted = models.fit(X, y, "classification", n_estimators=20)
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is not None, info.reason
    assert [i.name for i in onnx.load_from_string(model).graph.input] == ["input"]
    rows = X.to_numpy(dtype=np.float64)
    got = OnnxRuntime(model, fitted.manifest).predict(rows)
    np.testing.assert_array_equal(got.labels, fitted.pipeline.predict(X))


def _next_float32(values: np.ndarray) -> np.ndarray:
    """Each threshold moved up to the next float32: a drift only exact rows can see."""
    return np.nextafter(values.astype(np.float32), np.float32(np.inf)).astype(np.float64)


def _nudge_thresholds(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "nodes_values_as_tensor":
                nudged = _next_float32(numpy_helper.to_array(attribute.t))
                attribute.t.CopyFrom(numpy_helper.from_array(nudged))


def _drift_skl2onnx_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    original = onnx_graph.fix_tree_ensembles

    def drifting(graph: onnx.GraphProto) -> None:
        original(graph)
        _nudge_thresholds(graph)

    monkeypatch.setattr(onnx_graph, "fix_tree_ensembles", drifting)


def _drift_boosting_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    original = onnx_boosting.ensemble_attributes

    def drifting(trees: list[onnx_boosting.Tree], n_targets: int) -> dict[str, Any]:
        attrs = original(trees, n_targets)
        splits = _next_float32(numpy_helper.to_array(attrs["nodes_splits"]))
        attrs["nodes_splits"] = numpy_helper.from_array(splits)
        return attrs

    monkeypatch.setattr(onnx_boosting, "ensemble_attributes", drifting)


@pytest.mark.parametrize(
    ("estimator", "drift"),
    [
        ("sklearn.tree.DecisionTreeClassifier", _drift_skl2onnx_trees),
        (None, _drift_boosting_trees),  # the lecture's GradientBoostingClassifier
    ],
)
def test_threshold_rows_catch_a_one_ulp_drift(
    monkeypatch: pytest.MonkeyPatch, estimator: str | None, drift: Any
) -> None:
    fitted = models.fit(*models.iris(), "classification", estimator, random_state=0)
    drift(monkeypatch)
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is None and info.kind == "sklearn" and info.file == "model.skops"
    assert info.reason is not None and "parity failed" in info.reason
    # The training rows and random rows alone do not see it: the threshold rows do.
    monkeypatch.setattr(check_rows, "_threshold_rows", lambda *a: fitted.X.iloc[:0])
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert info.parity is not None and info.parity["threshold_rows"] == 0
    assert model is not None, info.reason


def test_hist_gradient_boosting_threshold_rows_catch_a_1e12_drift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Histogram trees compare float64: rows within an ulp or two of each split are checked."""
    fitted = models.fit(*models.iris(), "classification", HGB_C, max_iter=30)
    original = onnx_boosting.ensemble_attributes

    def drifting(trees: list[onnx_boosting.Tree], n_targets: int) -> dict[str, Any]:
        attrs = original(trees, n_targets)
        splits = numpy_helper.to_array(attrs["nodes_splits"])
        moved = splits - 1e-12 * np.maximum(np.abs(splits), 1.0)
        attrs["nodes_splits"] = numpy_helper.from_array(moved)
        return attrs

    monkeypatch.setattr(onnx_boosting, "ensemble_attributes", drifting)
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is None and info.kind == "sklearn"
    assert info.reason is not None and "parity failed" in info.reason
    monkeypatch.setattr(check_rows, "_threshold_rows", lambda *a: fitted.X.iloc[:0])
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is not None, "the training and random rows alone should not see the drift"


def test_hist_gradient_boosting_sends_missing_values_where_it_learned_to() -> None:
    X, y = models.iris()
    X = X.copy()
    X.iloc[::4, 2] = np.nan  # petal length: the strongest feature, so its splits matter
    bare = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    manifest = models.manifest_for(X, "classification", bare.classes_.tolist(), {X.columns[2]})
    model, info = convert.to_onnx(bare, manifest, X)
    assert model is not None, info.reason
    rows = X.to_numpy(np.float64)
    got = OnnxRuntime(model, manifest).predict(rows)
    np.testing.assert_array_equal(got.labels, bare.predict(X))
    assert got.proba is not None
    np.testing.assert_allclose(got.proba, bare.predict_proba(X), rtol=0, atol=1e-12)
    missing = np.isnan(rows[:, 2])
    assert missing.any() and not np.allclose(got.proba[missing], got.proba[missing][0])


def test_hist_gradient_boosting_with_categorical_splits_falls_back() -> None:
    X, y = models.iris()
    X = X.assign(**{X.columns[0]: X.iloc[:, 0].round().astype(np.int64)})
    bare = HistGradientBoostingClassifier(max_iter=10, categorical_features=[0]).fit(X, y)
    manifest = models.manifest_for(X, "classification", bare.classes_.tolist(), set())
    model, info = convert.to_onnx(bare, manifest, X)
    assert model is None and info.kind == "sklearn"
    assert info.reason is not None and "categorical features" in info.reason


def test_unsupported_estimator_falls_back_with_reason() -> None:
    fitted = models.fit(*models.iris(), "classification", "sklearn.neighbors.NearestCentroid")
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is None
    assert info.kind == "sklearn" and info.file == "model.skops"
    assert info.reason is not None and "NearestCentroid" in info.reason


def test_parity_failure_names_the_size_of_the_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted = models.fit(*models.diabetes(), "regression", n_estimators=10)

    def nudged(self: OnnxRuntime, rows: np.ndarray) -> Any:
        prediction = original(self, rows)
        return prediction._replace(labels=prediction.labels * (1 + 1e-4))

    original = OnnxRuntime.predict
    monkeypatch.setattr(OnnxRuntime, "predict", nudged)
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is None
    assert info.reason is not None and "relative" in info.reason and "0.0001" in info.reason


def test_never_raises_for_an_unusable_pipeline() -> None:
    fitted = models.fit(*models.iris(), "classification", n_estimators=5)
    model, info = convert.to_onnx(object(), fitted.manifest, fitted.X)
    assert model is None and info.kind == "sklearn" and info.reason


def test_check_rows_reach_beyond_the_training_range_and_include_missing_values() -> None:
    fitted = models.fit(models.shop()[0], models.shop()[1], "classification", n_estimators=10)
    frame, counts = check_frame(fitted.pipeline, fitted.manifest, fitted.X)
    assert counts["random_rows"] > 0 and counts["threshold_rows"] > 0
    income = frame["income"]
    assert income.max() > fitted.X["income"].max() and income.min() < fitted.X["income"].min()
    assert income.isna().any() and frame["city"].isna().any()
    assert set(frame["city"].dropna()) == {"paris", "rome", "oslo"}


@pytest.mark.parametrize(
    ("estimator", "params", "compared", "within"),
    [
        (None, {"n_estimators": 5}, np.float32, 1e-6),
        (HGB_C, {"max_iter": 5}, np.float64, 1e-12),
    ],
)
def test_threshold_rows_straddle_each_split(
    estimator: str | None, params: dict[str, Any], compared: type, within: float
) -> None:
    fitted = models.fit(*models.iris(), "classification", estimator, **params)
    frame, counts = check_frame(fitted.pipeline, fitted.manifest, fitted.X)
    scaled = fitted.pipeline[:-1].transform(frame.tail(counts["threshold_rows"]))
    seen = scaled.astype(compared).astype(np.float64)  # as the trees compare it
    splits = tree_splits(fitted.pipeline[-1])
    assert splits
    for feature, threshold in splits:
        column = seen[:, feature]
        # Some row sits just at or below the threshold, and some just above it.
        assert np.any((column <= threshold) & (column > threshold - within))
        assert np.any((column > threshold) & (column < threshold + within))
