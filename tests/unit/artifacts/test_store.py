"""stage / verify / load_pipeline: hashes, tampering, version checks, trusted types."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
import skops.io
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.unit.artifacts.helpers import make_manifest

from tabserve.artifacts import store
from tabserve.errors import (
    ArtifactError,
    IntegrityError,
    UntrustedArtifactError,
    VersionMismatchError,
)
from tabserve.types import RuntimeInfo

ROW = [[7.7, 3.0, 6.1, 2.3]]


@pytest.fixture
def staged(iris_pipeline: Pipeline, tabserve_home: Path) -> Path:
    return store.stage(
        manifest=make_manifest(),
        pipeline=iris_pipeline,
        files={"model.onnx": b"onnx-bytes", "report/metrics.json": b'{"accuracy": 0.9}'},
    )


def test_stage_writes_every_file_and_hashes_them(staged: Path, tabserve_home: Path) -> None:
    assert staged.is_relative_to(tabserve_home / "tmp")
    manifest = store.verify(staged)
    assert sorted(manifest.files) == ["model.onnx", "model.skops", "report/metrics.json"]
    assert manifest.files["model.onnx"] == store.sha256_bytes(b"onnx-bytes")
    assert (staged / "report" / "metrics.json").read_bytes() == b'{"accuracy": 0.9}'
    # The manifest is readable JSON for people too.
    assert b'\n  "name": "iris"' in (staged / "manifest.json").read_bytes()


def test_load_pipeline_predicts_like_the_original(staged: Path, iris_pipeline: Pipeline) -> None:
    manifest = store.verify(staged)
    loaded = store.load_pipeline(staged, manifest)
    assert isinstance(loaded, Pipeline)
    import pandas as pd

    X = pd.DataFrame(ROW, columns=list(iris_pipeline.feature_names_in_))
    assert loaded.predict(X).tolist() == iris_pipeline.predict(X).tolist() == [2]


@pytest.mark.parametrize("rel", ["../evil", "/etc/passwd", "a/../../b", "", "a//b", "a\\b"])
def test_stage_refuses_paths_outside_the_folder(
    rel: str, iris_pipeline: Pipeline, tabserve_home: Path
) -> None:
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        store.stage(manifest=make_manifest(), pipeline=iris_pipeline, files={rel: b"x"})
    assert not (tabserve_home.parent / "evil").exists()


def test_stage_refuses_a_runtime_file_that_is_not_there(
    iris_pipeline: Pipeline, tabserve_home: Path
) -> None:
    manifest = make_manifest(runtime=RuntimeInfo(kind="onnx", file="model.onnx"))
    with pytest.raises(ArtifactError, match=r"model\.onnx"):
        store.stage(manifest=manifest, pipeline=iris_pipeline, files={})


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        _flip_byte,
        lambda p: p.write_bytes(p.read_bytes()[:-10]),
    ],
    ids=["flipped-byte", "truncated"],
)
@pytest.mark.parametrize("rel", ["model.skops", "model.onnx", "report/metrics.json"])
def test_tampered_file_is_refused_with_both_hashes(staged: Path, rel: str, damage: object) -> None:
    expected = store.verify(staged).files[rel]
    damage(staged / rel)  # type: ignore[operator]
    actual = store.sha256_file(staged / rel)
    with pytest.raises(IntegrityError) as caught:
        store.verify(staged)
    message = caught.value.message
    assert message.startswith(f"{rel}: sha256 is {actual}, manifest says {expected}")
    assert "re-train or re-import" in message


def test_tampered_model_is_refused_by_load_pipeline(staged: Path) -> None:
    manifest = store.verify(staged)
    _flip_byte(staged / "model.skops")
    with pytest.raises(IntegrityError, match=r"model\.skops: sha256 is"):
        store.load_pipeline(staged, manifest)


def test_deleted_file_is_refused(staged: Path) -> None:
    expected = store.verify(staged).files["model.onnx"]
    (staged / "model.onnx").unlink()
    with pytest.raises(
        IntegrityError, match=f"model.onnx: missing, manifest says sha256 {expected}"
    ):
        store.verify(staged)


def test_missing_or_broken_manifest_is_refused(staged: Path) -> None:
    (staged / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not a valid tabserve manifest"):
        store.verify(staged)
    (staged / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match=r"manifest\.json is missing"):
        store.verify(staged)


def _rewrite_manifest(folder: Path, **changes: object) -> None:
    manifest = store.verify(folder)
    store.write_manifest(folder, msgspec.structs.replace(manifest, **changes))


def test_manifest_listing_a_path_outside_is_refused(staged: Path) -> None:
    files = dict(store.verify(staged).files)
    files["../../outside"] = "0" * 64
    _rewrite_manifest(staged, files=files)
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        store.verify(staged)


def test_symlink_out_of_the_folder_is_refused(staged: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"onnx-bytes")  # same bytes: only the symlink gives it away
    (staged / "model.onnx").unlink()
    (staged / "model.onnx").symlink_to(outside)
    with pytest.raises(IntegrityError, match="outside the artifact folder"):
        store.verify(staged)


def test_other_sklearn_minor_is_refused_and_overridable(
    staged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rewrite_manifest(staged, environment={"scikit-learn": "1.2.2"})
    manifest = store.verify(staged)
    with pytest.raises(VersionMismatchError) as caught:
        store.load_pipeline(staged, manifest)
    message = caught.value.message
    assert "scikit-learn 1.2.2" in message
    assert "--allow-version-mismatch" in message
    assert "TABSERVE_ALLOW_VERSION_MISMATCH" in message
    assert isinstance(store.load_pipeline(staged, manifest, allow_version_mismatch=True), Pipeline)
    monkeypatch.setenv("TABSERVE_ALLOW_VERSION_MISMATCH", "1")
    assert isinstance(store.load_pipeline(staged, manifest), Pipeline)


def test_same_minor_other_patch_loads(staged: Path) -> None:
    import sklearn

    major, minor = sklearn.__version__.split(".")[:2]
    _rewrite_manifest(staged, environment={"scikit-learn": f"{major}.{minor}.99"})
    assert isinstance(store.load_pipeline(staged, store.verify(staged)), Pipeline)


def test_skops_file_with_an_untrusted_type_is_refused(tabserve_home: Path, tmp_path: Path) -> None:
    evil = Pipeline([("run", FunctionTransformer(os.system))])
    folder = store.stage(manifest=make_manifest(), pipeline=evil, files={})
    with pytest.raises(UntrustedArtifactError, match=r"posix\.system"):
        store.load_pipeline(folder, store.verify(folder))


def test_trusted_list_is_fixed_in_code_not_read_from_the_artifact(staged: Path) -> None:
    # Whatever an artifact says, the only extra trusted types are tabserve's own list.
    data = skops.io.dumps(Pipeline([("run", FunctionTransformer(os.system))]))
    with pytest.raises(UntrustedArtifactError):
        store.loads_trusted(data, "x")
