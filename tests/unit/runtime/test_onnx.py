"""The ONNX runtime: same answers as scikit-learn, object rows, threads, no scikit-learn import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np
import pytest
from tests.unit.runtime import models

from tabserve.artifacts import convert, store
from tabserve.errors import ArtifactError
from tabserve.runtime import load_runtime
from tabserve.runtime.onnx import OnnxRuntime
from tabserve.runtime.sklearn import SklearnRuntime


def _onnx(fitted: models.Fitted) -> OnnxRuntime:
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    assert model is not None, info.reason
    return OnnxRuntime(model, fitted.manifest)


def _artifact(fitted: models.Fitted, home: Path) -> tuple[Path, store.Manifest]:
    model, info = convert.to_onnx(fitted.pipeline, fitted.manifest, fitted.X)
    files = {} if model is None else {info.file: model}
    manifest = msgspec.structs.replace(fitted.manifest, runtime=info)
    folder = store.stage(manifest=manifest, pipeline=fitted.pipeline, files=files, home=home)
    return folder, store.verify(folder)


def test_object_rows_with_none_and_categories(shop_model: models.Fitted) -> None:
    runtime = _onnx(shop_model)
    rows = models.object_rows(shop_model.X, shop_model.manifest)
    assert any(v is None for v in rows[:, 0]) and any(v is None for v in rows[:, 2])
    got = runtime.predict(rows)
    np.testing.assert_array_equal(got.labels, shop_model.pipeline.predict(shop_model.X))
    assert got.labels.dtype.kind == "U" and set(got.labels) == {"yes", "no"}
    assert got.proba is not None and got.proba.dtype == np.float64
    np.testing.assert_allclose(
        got.proba, shop_model.pipeline.predict_proba(shop_model.X), atol=1e-6, rtol=0
    )


def test_iris_labels_and_probabilities(iris_model: models.Fitted) -> None:
    got = _onnx(iris_model).predict(iris_model.X.to_numpy(dtype=np.float64)[:5])
    assert got.labels.dtype == np.int64 and got.labels.shape == (5,)
    assert got.proba is not None and got.proba.shape == (5, 3)
    np.testing.assert_allclose(got.proba.sum(axis=1), 1.0, atol=1e-6)


def test_regression_values_are_float64() -> None:
    fitted = models.fit(*models.diabetes(), "regression", n_estimators=20)
    got = _onnx(fitted).predict(fitted.X.to_numpy(dtype=np.float64))
    assert got.proba is None and got.labels.dtype == np.float64
    want = fitted.pipeline.predict(fitted.X)
    np.testing.assert_allclose(got.labels, want, rtol=1e-6)


def test_many_threads_give_the_answers_of_one(shop_model: models.Fitted) -> None:
    runtime = _onnx(shop_model)
    rows = models.object_rows(shop_model.X, shop_model.manifest)
    rng = np.random.default_rng(3)
    batches = [rng.choice(len(rows), size=int(rng.integers(1, 80))) for _ in range(400)]
    alone = [runtime.predict(rows[b]) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda b: runtime.predict(rows[b]), batches))
    for one, many in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one.labels, many.labels)
        np.testing.assert_array_equal(one.proba, many.proba)


def test_wrong_width_is_refused(iris_model: models.Fitted) -> None:
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        _onnx(iris_model).predict(np.zeros((2, 3)))


def test_closed_runtime_says_so(iris_model: models.Fitted) -> None:
    runtime = _onnx(iris_model)
    runtime.close()
    with pytest.raises(ArtifactError, match="closed"):
        runtime.predict(np.zeros((1, 4)))


def test_load_runtime_picks_onnx_and_sklearn_on_request(
    iris_model: models.Fitted, tabserve_home: Path
) -> None:
    folder, manifest = _artifact(iris_model, tabserve_home)
    fast = load_runtime(folder, manifest)
    slow = load_runtime(folder, manifest, prefer="sklearn")
    assert fast.kind == "onnx" and slow.kind == "sklearn"
    assert isinstance(slow, SklearnRuntime)
    rows = iris_model.X.to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(fast.predict(rows).labels, slow.predict(rows).labels)


def test_sklearn_only_artifact_refuses_onnx(tabserve_home: Path) -> None:
    fitted = models.fit(*models.iris(), "classification", "sklearn.neighbors.NearestCentroid")
    folder, manifest = _artifact(fitted, tabserve_home)
    assert manifest.runtime.kind == "sklearn"
    assert load_runtime(folder, manifest).kind == "sklearn"
    with pytest.raises(ArtifactError, match="scikit-learn runtime"):
        load_runtime(folder, manifest, prefer="onnx")


def test_unknown_runtime_name(iris_model: models.Fitted, tabserve_home: Path) -> None:
    from tabserve.errors import UsageError

    folder, manifest = _artifact(iris_model, tabserve_home)
    with pytest.raises(UsageError, match="unknown runtime"):
        load_runtime(folder, manifest, prefer="tensorrt")


def test_serving_onnx_imports_no_sklearn_pandas_or_scipy(
    shop_model: models.Fitted, tabserve_home: Path
) -> None:
    folder, manifest = _artifact(shop_model, tabserve_home)
    assert manifest.runtime.kind == "onnx"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import msgspec
        import numpy as np
        from tabserve.types import Manifest
        from tabserve.runtime import load_runtime

        folder = Path({str(folder)!r})
        manifest = msgspec.json.decode((folder / "manifest.json").read_bytes(), type=Manifest)
        runtime = load_runtime(folder, manifest, threads=1)
        rows = np.array([[41.0, None, "rome", "M"], [None, 70.0, None, "S"]], dtype=object)
        print(runtime.kind, list(runtime.predict(rows).labels))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"sklearn", "pandas", "scipy"}})
        print("heavy:", heavy[:5])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("onnx [")
    assert lines[1] == "heavy: []"


TIED = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.1, 0.2, 0.7], [0.4, 0.3, 0.3]])
GRAPH_LABELS = np.array([1, 2, 1, 0], dtype=np.int64)


def test_a_forest_tie_in_probabilities_takes_the_first_class_as_scikit_learn() -> None:
    forest = models.fit(
        *models.iris(), "classification", "sklearn.ensemble.RandomForestClassifier", n_estimators=4
    )
    runtime = _onnx(forest)
    # ONNX's own labels on rows whose top probabilities tie: scikit-learn takes the first class.
    runtime._run = lambda outputs, feeds, options: [GRAPH_LABELS, TIED]
    got = runtime.predict(np.zeros((4, 4)))
    # Tied rows get the first most probable class; an untied row keeps ONNX's label, even
    # one that differs from the most probable class.
    assert got.labels.tolist() == [0, 1, 1, 0]


def test_a_boosted_models_graph_label_stands_on_a_tie(iris_model: models.Fitted) -> None:
    """Gradient boosting predicts from raw scores (binary: raw >= 0 is class 1), not by the
    first most probable class: its graph computes that rule, so a tie is not decided again."""
    runtime = _onnx(iris_model)
    runtime._run = lambda outputs, feeds, options: [GRAPH_LABELS, TIED]
    assert runtime.predict(np.zeros((4, 4))).labels.tolist() == GRAPH_LABELS.tolist()
