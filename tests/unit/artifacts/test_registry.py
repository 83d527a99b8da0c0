"""The embedded registry: versions, aliases, references, concurrency and crash safety."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from tests.unit.artifacts.helpers import make_manifest

from tabserve.artifacts import store
from tabserve.artifacts.local import LocalRegistry
from tabserve.artifacts.registry import Registry, open_registry
from tabserve.errors import IntegrityError, ModelNotFoundError, UsageError
from tabserve.settings import Settings


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with open_registry(settings) as reg:
        yield reg


def stage(pipeline: Pipeline, name: str = "iris") -> Path:
    return store.stage(manifest=make_manifest(name), pipeline=pipeline, files={})


def test_default_registry_is_a_folder_with_sqlite_index(
    registry: Registry, tabserve_home: Path
) -> None:
    assert isinstance(registry, LocalRegistry)
    assert (tabserve_home / "registry.db").is_file()
    assert registry.list() == []


def test_publish_numbers_versions_and_fetch_verifies(
    registry: Registry, iris_pipeline: Pipeline, tabserve_home: Path
) -> None:
    staged = stage(iris_pipeline)
    first = registry.publish(staged)
    second = registry.publish(stage(iris_pipeline))
    other = registry.publish(stage(iris_pipeline, "wine"))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert not staged.exists()
    manifest, path = registry.fetch("iris:1")
    assert path == tabserve_home.absolute() / "models" / "iris" / "1"
    assert manifest.version == 1
    assert manifest.files == first.files
    assert isinstance(store.load_pipeline(path, manifest), Pipeline)
    records = registry.list()
    assert [r.ref for r in records] == ["iris:1", "iris:2", "wine:1"]
    assert records[0].task == "classification"
    assert records[0].runtime == "sklearn"
    assert records[0].metrics == {"accuracy": 0.933}


def test_resolve_prefers_production_then_newest(
    registry: Registry, iris_pipeline: Pipeline
) -> None:
    for _ in range(3):
        registry.publish(stage(iris_pipeline))
    assert registry.resolve("iris").version == 3
    registry.promote("iris", 2, "production")
    assert registry.resolve("iris").version == 2
    assert registry.resolve("iris@production").version == 2
    assert registry.resolve("iris:3").version == 3
    assert registry.resolve("iris").aliases == ["production"]
    registry.promote("iris", 1, "production")  # moving an alias
    assert registry.aliases("iris") == {"production": 1}


def test_unknown_refs_list_what_exists(registry: Registry, iris_pipeline: Pipeline) -> None:
    with pytest.raises(ModelNotFoundError, match="empty; train or import a model first"):
        registry.resolve("iris")
    registry.publish(stage(iris_pipeline))
    registry.promote("iris", 1, "production")
    registry.publish(stage(iris_pipeline, "wine"))
    with pytest.raises(ModelNotFoundError, match=r"registered: iris \(1 @production\); wine \(1\)"):
        registry.resolve("nope")
    with pytest.raises(ModelNotFoundError, match="iris has versions 1 @production"):
        registry.resolve("iris:7")
    with pytest.raises(ModelNotFoundError):
        registry.resolve("iris@staging")
    with pytest.raises(ModelNotFoundError):
        registry.promote("iris", 9, "production")
    with pytest.raises(ModelNotFoundError):
        registry.delete("iris", 9)


def test_delete_removes_version_aliases_and_files(
    registry: Registry, iris_pipeline: Pipeline, tabserve_home: Path
) -> None:
    registry.publish(stage(iris_pipeline))
    registry.publish(stage(iris_pipeline))
    registry.promote("iris", 2, "production")
    registry.delete("iris", 2)
    assert [r.ref for r in registry.list()] == ["iris:1"]
    assert registry.aliases("iris") == {}
    assert not (tabserve_home / "models" / "iris" / "2").exists()
    assert registry.resolve("iris").version == 1
    # Versions are never reused: the next one is 3.
    assert registry.publish(stage(iris_pipeline)).version == 3


def test_fetch_refuses_a_tampered_version(registry: Registry, iris_pipeline: Pipeline) -> None:
    registry.publish(stage(iris_pipeline))
    _, path = registry.fetch("iris")
    (path / "model.skops").write_bytes(b"PK" + (path / "model.skops").read_bytes()[2:-1])
    with pytest.raises(
        IntegrityError, match=r"model\.skops: sha256 is [0-9a-f]{64}, manifest says"
    ):
        registry.fetch("iris")


@pytest.mark.parametrize("ref", ["../../etc", "iris/../../x", "iris:../1", "iris@../../x"])
def test_path_traversal_is_refused(registry: Registry, ref: str) -> None:
    with pytest.raises(UsageError):
        registry.fetch(ref)


def test_symlinked_model_folder_leading_out_is_refused(
    registry: Registry, tabserve_home: Path, tmp_path: Path
) -> None:
    assert isinstance(registry, LocalRegistry)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tabserve_home / "models" / "evil").symlink_to(outside)
    with pytest.raises(Exception, match="leads outside"):
        registry.version_dir("evil", 1)


def test_a_name_from_a_manifest_is_checked(registry: Registry, iris_pipeline: Pipeline) -> None:
    folder = store.stage(manifest=make_manifest("../x"), pipeline=iris_pipeline, files={})
    with pytest.raises(UsageError, match="invalid model name"):
        registry.publish(folder)


def test_concurrent_publishes_in_threads_get_distinct_versions(
    settings: Settings, iris_pipeline: Pipeline
) -> None:
    folders = [stage(iris_pipeline) for _ in range(8)]
    versions: list[int] = []
    errors: list[BaseException] = []

    def publish(folder: Path) -> None:
        try:
            with open_registry(settings) as reg:
                versions.append(reg.publish(folder).version)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(versions) == list(range(1, 9))
    with open_registry(settings) as reg:
        assert [r.version for r in reg.list()] == list(range(1, 9))


PUBLISH = """
import sys
from pathlib import Path
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
with open_registry(Settings()) as reg:
    print(reg.publish(Path(sys.argv[1])).version)
"""


def test_concurrent_publishes_in_processes_get_distinct_versions(
    settings: Settings, iris_pipeline: Pipeline
) -> None:
    folders = [stage(iris_pipeline) for _ in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", PUBLISH, str(f)], stdout=subprocess.PIPE, text=True)
        for f in folders
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert sorted(int(o) for o in outputs) == [1, 2, 3, 4]
    with open_registry(settings) as reg:
        assert [r.version for r in reg.list()] == [1, 2, 3, 4]
        for v in range(1, 5):
            assert reg.fetch(f"iris:{v}")[0].version == v


def test_failure_mid_publish_leaves_nothing_visible(
    registry: Registry,
    iris_pipeline: Pipeline,
    tabserve_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(self: LocalRegistry, manifest: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(LocalRegistry, "write_index_row", fail)
    with pytest.raises(OSError, match="disk full"):
        registry.publish(stage(iris_pipeline))
    monkeypatch.undo()
    assert registry.list() == []
    assert not (tabserve_home / "models" / "iris" / "1").exists()
    assert registry.publish(stage(iris_pipeline)).version == 2


CRASH = """
import os, sys
from pathlib import Path
from tabserve.artifacts.local import LocalRegistry
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
# The process dies after the files are in place but before the index row is written.
LocalRegistry.write_index_row = lambda self, manifest: os._exit(9)
open_registry(Settings()).publish(Path(sys.argv[1]))
"""


def test_process_killed_mid_publish_leaves_no_visible_version(
    registry: Registry, iris_pipeline: Pipeline
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(stage(iris_pipeline))], timeout=120, check=False
    )
    assert done.returncode == 9
    assert registry.list() == []
    with pytest.raises(ModelNotFoundError):
        registry.resolve("iris")
    published = registry.publish(stage(iris_pipeline))
    assert published.version == 2
    assert registry.fetch("iris")[0].version == 2
