"""`tabserve train`, run as a user runs it: the metrics table, the artifact, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tabserve.artifacts import store
from tabserve.cli import app


def test_default_train_prints_metrics_artifact_and_how_to_serve(tabserve_home: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "tabserve", "train"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout and "0.933" in done.stdout
    assert "trained iris:1" in done.stdout
    assert "tabserve serve iris" in done.stdout
    folder = tabserve_home / "models" / "iris" / "1"
    assert f"artifact: {folder}" in done.stdout
    assert store.verify(folder).metrics["test_rows"] == 45


def test_csv_train_with_name_and_estimator(tmp_path: Path, tabserve_home: Path) -> None:
    path = tmp_path / "parts.csv"
    rows = [f"{i % 7},{'ab'[i % 2]},{'ok' if i % 7 < 4 else 'bad'}" for i in range(60)]
    path.write_text("size,kind,label\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--source",
            f"csv:{path}",
            "--target",
            "label",
            "--name",
            "parts",
            "--estimator",
            "sklearn.ensemble.RandomForestClassifier",
            "--params",
            '{"n_estimators": 20}',
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained parts:1" in result.stdout
    manifest = store.verify(tabserve_home / "models" / "parts" / "1")
    assert manifest.estimator == "sklearn.ensemble.RandomForestClassifier"
    assert manifest.params["n_estimators"] == 20


def test_hist_gradient_boosting_trains_to_the_fast_runtime(tabserve_home: Path) -> None:
    estimator = "sklearn.ensemble.HistGradientBoostingClassifier"
    result = CliRunner().invoke(app, ["train", "--name", "hgb", "--estimator", estimator])
    assert result.exit_code == 0, result.output
    assert "trained hgb:1: classification, 4 features, runtime onnx" in result.stdout
    manifest = store.verify(tabserve_home / "models" / "hgb" / "1")
    assert manifest.runtime.kind == "onnx" and manifest.runtime.reason is None
    assert (manifest.runtime.parity or {})["threshold_rows"] > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--source", "mnist"], "unknown source 'mnist'"),
        (["--source", "csv:/nonexistent/data.csv", "--target", "y"], "does not exist"),
        (["--params", "{oops"], "--params is not valid JSON"),
        (["--estimator", "os.system"], "not a scikit-learn estimator"),
        (["--estimator", "sklearn.svm.SVR", "--task", "classification"], "--task regression"),
        (["--test-size", "1.5"], "--test-size 1.5 is out of range"),
        (["--task", "ranking"], "unknown task"),
        (["--source", "postgresql://me:pw@127.0.0.1/db", "--table", "t"], "TABSERVE_DB_PASSWORD"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str], says: str, tabserve_home: Path
) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and says in lines[-1]
    assert "Traceback" not in result.output
    assert not (tabserve_home / "models").exists()


def test_target_missing_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["train", "--source", f"csv:{path}", "--target", "label"])
    assert result.exit_code == 2
    assert "target column 'label' is not in" in result.stderr
    assert "its columns are ['a', 'b']" in result.stderr
