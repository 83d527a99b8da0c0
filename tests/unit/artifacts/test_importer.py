"""tabserve import: the lecture's pickle (trusted), malicious pickles (refused), skops files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
import skops.io
from sklearn import datasets
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from tests.support.models import write_lecture_pickle

from tabserve.artifacts import store
from tabserve.artifacts.importer import import_model, read_model
from tabserve.artifacts.registry import open_registry
from tabserve.errors import UntrustedArtifactError, UsageError
from tabserve.settings import Settings

CLIENT = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def lecture_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.pickle exactly as the lecture builds it."""
    return write_lecture_pickle(tmp_path_factory.mktemp("lecture") / "model.pickle")


class Boom:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_without_trust_is_refused_and_never_unpickled(
    tmp_path: Path, settings: Settings
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pickle"
    evil.write_bytes(pickle.dumps(Boom(marker)))
    with pytest.raises(UntrustedArtifactError, match="--trust-pickle"):
        import_model(
            evil,
            name="evil",
            features=None,
            sample=None,
            trust_pickle=False,
            target=None,
            settings=settings,
        )
    assert not marker.exists()
    with open_registry(settings) as registry:
        assert registry.list() == []


def test_joblib_file_without_trust_is_refused(tmp_path: Path) -> None:
    import joblib

    marker = tmp_path / "pwned"
    evil = tmp_path / "model.joblib"
    joblib.dump(Boom(marker), evil)
    with pytest.raises(UntrustedArtifactError):
        read_model(evil, trust_pickle=False)
    assert not marker.exists()


def test_skops_file_with_untrusted_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump(Pipeline([("run", FunctionTransformer(os.system))]), path)
    with pytest.raises(UntrustedArtifactError, match=r"posix\.system"):
        read_model(path, trust_pickle=True)


def test_a_non_model_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "thing.skops"
    skops.io.dump({"not": "a model"}, path)
    with pytest.raises(UsageError, match="not a fitted scikit-learn classifier or regressor"):
        import_model(
            path,
            name="thing",
            features=None,
            sample=None,
            trust_pickle=False,
            target=None,
            settings=settings,
        )


def test_lecture_pickle_imports_with_trust_and_client_names(
    lecture_pickle: Path, settings: Settings
) -> None:
    manifest = import_model(
        lecture_pickle,
        name="iris",
        features=CLIENT,
        sample=None,
        trust_pickle=True,
        target=None,
        settings=settings,
    )
    assert manifest.ref == "iris:1"
    assert manifest.task == "classification"
    assert manifest.classes == [0, 1, 2]
    assert [f.name for f in manifest.features] == CLIENT
    assert [f.column for f in manifest.features] == datasets.load_iris()["feature_names"]
    with open_registry(settings) as registry:
        fetched, path = registry.fetch("iris")
    pipeline = store.load_pipeline(path, fetched)
    row = pd.DataFrame([[7.7, 3.0, 6.1, 2.3]], columns=[f.column for f in fetched.features])
    assert pipeline.predict(row).tolist() == [2]  # type: ignore[attr-defined]


def test_wrong_number_of_feature_names_is_refused(lecture_pickle: Path, settings: Settings) -> None:
    with pytest.raises(UsageError, match="gives 2 names but the model takes 4"):
        import_model(
            lecture_pickle,
            name="iris",
            features=["a", "b"],
            sample=None,
            trust_pickle=True,
            target=None,
            settings=settings,
        )


def test_skops_file_imports_with_a_sample_for_statistics(
    tmp_path: Path, settings: Settings
) -> None:
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    X.columns = CLIENT
    model = Pipeline(
        [("scale", StandardScaler()), ("gbm", GradientBoostingClassifier(n_estimators=10))]
    ).fit(X, y)
    path = tmp_path / "flowers.skops"
    skops.io.dump(model, path)
    sample = tmp_path / "sample.csv"
    X.assign(species=y).to_csv(sample, index=False)
    manifest = import_model(
        path,
        name="flowers",
        features=None,
        sample=sample,
        trust_pickle=False,
        target="species",
        settings=settings,
    )
    assert [f.name for f in manifest.features] == CLIENT
    first = manifest.features[0]
    assert first.min == pytest.approx(X["sepal_length"].min())
    assert first.max == pytest.approx(X["sepal_length"].max())
    assert manifest.data_fingerprint
