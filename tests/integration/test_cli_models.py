"""The `tabserve import` and `tabserve models` commands, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn import datasets
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.support.models import write_lecture_pickle
from tests.unit.artifacts.helpers import NAMES, make_manifest

from tabserve.artifacts import store
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings

TABSERVE = [sys.executable, "-m", "tabserve"]


def tabserve(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TABSERVE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [*TABSERVE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def lecture_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lecture's model.pickle: Pipeline(StandardScaler, GradientBoosting) on a DataFrame."""
    return write_lecture_pickle(tmp_path_factory.mktemp("lecture") / "model.pickle")


def publish_iris(home: Path, times: int) -> None:
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    model = Pipeline(
        [("scale", StandardScaler()), ("gbm", GradientBoostingClassifier(n_estimators=5))]
    ).fit(X, y)
    with open_registry(Settings(home=home)) as registry:  # type: ignore[call-arg]
        for _ in range(times):
            registry.publish(
                store.stage(manifest=make_manifest(), pipeline=model, files={}, home=home)
            )


def test_models_list_show_promote_delete(tabserve_home: Path) -> None:
    empty = tabserve("models", "list", home=tabserve_home)
    assert empty.returncode == 0
    assert "no models" in empty.stdout

    publish_iris(tabserve_home, 2)
    listed = tabserve("models", "list", home=tabserve_home)
    assert listed.returncode == 0, listed.stderr
    assert "iris" in listed.stdout
    assert "accuracy 0.933" in listed.stdout

    promoted = tabserve("models", "promote", "iris:1", "production", home=tabserve_home)
    assert promoted.returncode == 0, promoted.stderr
    assert "iris@production -> iris:1" in promoted.stdout

    shown = tabserve("models", "show", "iris", home=tabserve_home)
    assert shown.returncode == 0, shown.stderr
    assert "iris:1 @production" in shown.stdout
    assert "runtime   sklearn (model.skops)" in shown.stdout
    assert "sepal_length" in shown.stdout
    assert "classes   0, 1, 2" in shown.stdout

    deleted = tabserve("models", "delete", "iris:1", home=tabserve_home)
    assert deleted.returncode == 0, deleted.stderr
    shown = tabserve("models", "show", "iris", home=tabserve_home)
    assert "iris:2" in shown.stdout  # production is gone with version 1: the newest is served


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "nope"), "not found"),
        (("models", "show", "../etc"), "invalid model name"),
        (("models", "promote", "iris", "production"), "NAME:VERSION"),
        (("models", "promote", "iris:9", "production"), "iris has versions 1"),
        (("models", "delete", "iris:9"), "not found"),
        (("import", "/nonexistent/model.pkl", "--name", "x"), "does not exist"),
    ],
)
def test_errors_are_one_line_exit_2_no_traceback(
    tabserve_home: Path, args: tuple[str, ...], message: str
) -> None:
    publish_iris(tabserve_home, 1)
    done = tabserve(*args, home=tabserve_home)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_import_pickle_without_trust_is_refused(
    tabserve_home: Path, lecture_pickle: Path, tmp_path: Path
) -> None:
    done = tabserve("import", str(lecture_pickle), "--name", "iris", home=tabserve_home)
    assert done.returncode == 2
    assert "--trust-pickle" in done.stderr
    assert "Traceback" not in done.stderr
    assert "no models" in tabserve("models", "list", home=tabserve_home).stdout


def test_import_the_lecture_pickle_with_trust(tabserve_home: Path, lecture_pickle: Path) -> None:
    done = tabserve(
        "import",
        str(lecture_pickle),
        "--name",
        "iris",
        "--trust-pickle",
        "--features",
        "sepal_length,sepal_width,petal_length,petal_width",
        home=tabserve_home,
    )
    assert done.returncode == 0, done.stderr
    assert "imported iris:1" in done.stdout
    with open_registry(Settings(home=tabserve_home)) as registry:  # type: ignore[call-arg]
        manifest, path = registry.fetch("iris")
    assert [f.name for f in manifest.features] == NAMES
    assert manifest.features[0].column == "sepal length (cm)"
    model = store.load_pipeline(path, manifest)
    row = pd.DataFrame([[7.7, 3.0, 6.1, 2.3]], columns=[f.column for f in manifest.features])
    assert model.predict(row).tolist() == [2]  # type: ignore[attr-defined]
    shown = tabserve("models", "show", "iris", home=tabserve_home)
    assert f"runtime   {manifest.runtime.kind}" in shown.stdout
