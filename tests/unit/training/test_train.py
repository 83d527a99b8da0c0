"""A whole training run: split, fit, measure, report and publish to a fresh registry."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tabserve.artifacts import store
from tabserve.errors import DataSourceError, UsageError
from tabserve.settings import Settings
from tabserve.training.train import TrainSpec, train


def test_default_iris_run_gives_the_lectures_accuracy(tabserve_home: Path) -> None:
    messages: list[str] = []
    result = train(TrainSpec(), Settings(), messages.append)
    manifest = result.manifest
    assert round(result.metrics["accuracy"], 3) == 0.933
    assert (manifest.name, manifest.version, manifest.task) == ("iris", 1, "classification")
    assert manifest.classes == [0, 1, 2] and manifest.target == "target"
    assert [f.name for f in manifest.features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert not any(f.nullable for f in manifest.features)
    assert manifest.estimator == "sklearn.ensemble.GradientBoostingClassifier"
    assert manifest.metrics["test_rows"] == 45 and manifest.metrics["train_rows"] == 105
    assert manifest.environment["scikit-learn"] and len(manifest.data_fingerprint) == 64
    assert any("fitting" in m for m in messages)

    folder = Path(result.location)
    assert folder.is_relative_to(tabserve_home)
    assert store.verify(folder) == manifest
    for rel in ("model.skops", "report/metrics.json", "report/confusion_matrix.png"):
        assert rel in manifest.files
    assert (
        json.loads((folder / "report/metrics.json").read_text())["accuracy"]
        == result.metrics["accuracy"]
    )
    model = store.loads_trusted((folder / "model.skops").read_bytes(), "model.skops")
    row = pd.DataFrame([[7.7, 3.0, 6.1, 2.3]], columns=[f.column for f in manifest.features])
    assert list(model.predict(row)) == [2]  # type: ignore[attr-defined]


def test_same_data_same_model_next_version() -> None:
    first = train(TrainSpec(), Settings()).manifest
    second = train(TrainSpec(name="flowers"), Settings()).manifest
    third = train(TrainSpec(), Settings()).manifest
    assert (second.ref, third.ref) == ("flowers:1", "iris:2")
    assert first.data_fingerprint == third.data_fingerprint
    assert first.metrics == third.metrics


def test_csv_with_categories_and_missing_values_trains(shop_csv: Path) -> None:
    result = train(TrainSpec(source=f"csv:{shop_csv}", target="bought"), Settings())
    manifest = result.manifest
    assert manifest.name == "shop" and manifest.classes == ["no", "yes"]
    age, city, income = manifest.features
    assert (age.kind, city.kind, income.kind) == ("number", "category", "number")
    assert city.categories == ["oslo", "paris", "rome"]
    assert age.nullable and city.nullable and income.nullable  # the pipeline imputes them
    assert age.missing_fraction == pytest.approx(10 / 90) and income.missing_fraction == 0
    assert result.metrics["accuracy"] > 0.7


def test_numeric_target_trains_a_regressor(shop_csv: Path) -> None:
    spec = TrainSpec(source=f"csv:{shop_csv}", target="income", name="income")
    result = train(spec, Settings())
    assert result.manifest.task == "regression" and result.manifest.classes is None
    assert set(result.metrics) >= {"rmse", "mae", "r2"}
    assert "report/predicted_vs_actual.png" in result.manifest.files


def test_estimator_decides_the_task_and_params_are_recorded() -> None:
    spec = TrainSpec(estimator="sklearn.ensemble.RandomForestRegressor", params={"n_estimators": 5})
    manifest = train(spec, Settings()).manifest
    assert manifest.task == "regression"
    assert manifest.params["n_estimators"] == 5 and manifest.params["random_state"] == 47


@pytest.mark.parametrize(
    ("spec", "error", "says"),
    [
        (TrainSpec(test_size=1.0), UsageError, r"--test-size 1.0 is out of range"),
        (TrainSpec(test_size=0), UsageError, "out of range"),
        (TrainSpec(name="../etc"), UsageError, "invalid model name"),
        (TrainSpec(params={"max_depth": "deep"}), UsageError, "--params"),
    ],
)
def test_bad_options_are_refused(
    spec: TrainSpec, error: type, says: str, tabserve_home: Path
) -> None:
    with pytest.raises(error, match=says):
        train(spec, Settings())
    assert not (tabserve_home / "models").exists() or not any((tabserve_home / "models").iterdir())


def test_one_class_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("x,y\n" + "".join(f"{i},a\n" for i in range(10)))
    with pytest.raises(DataSourceError, match="one value only"):
        train(TrainSpec(source=f"csv:{path}", target="y"), Settings())


def test_too_few_rows_per_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rare.csv"
    path.write_text("x,y\n" + "".join(f"{i},a\n" for i in range(10)) + "99,b\n")
    with pytest.raises(DataSourceError, match="stratified split"):
        train(TrainSpec(source=f"csv:{path}", target="y"), Settings())


def test_source_name_that_is_not_a_model_name_asks_for_name(tmp_path: Path) -> None:
    path = tmp_path / "my data.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    with pytest.raises(UsageError, match="--name"):
        train(TrainSpec(source=f"csv:{path}", target="y"), Settings())
