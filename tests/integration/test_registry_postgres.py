"""The Postgres registry on the real server: index and files in the database, any host can fetch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.unit.artifacts.helpers import NAMES, make_manifest

from tabserve.artifacts import postgres as pg_registry
from tabserve.artifacts import store
from tabserve.artifacts.postgres import PostgresRegistry
from tabserve.artifacts.registry import Registry, open_registry
from tabserve.errors import DatabaseError, IntegrityError, ModelNotFoundError
from tabserve.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    model = Pipeline(
        [("scale", StandardScaler()), ("gbm", GradientBoostingClassifier(n_estimators=5))]
    )
    return model.fit(X, y)


def settings_for(url: str, home: Path) -> Settings:
    return Settings(registry_url=url, home=home)  # type: ignore[call-arg]


@pytest.fixture
def registry(postgres_url: str, tabserve_home: Path) -> Iterator[Registry]:
    with open_registry(settings_for(postgres_url, tabserve_home)) as reg:
        yield reg


def stage(pipeline: Pipeline, home: Path, name: str = "iris") -> Path:
    return store.stage(
        manifest=make_manifest(name),
        pipeline=pipeline,
        files={"report/metrics.json": b'{"accuracy": 0.933}'},
        home=home,
    )


def test_migration_creates_the_schema_on_an_empty_database(
    postgres_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname='public'"
        ).fetchone() == (0,)
    with open_registry(settings_for(postgres_url, tmp_path)) as reg:
        assert isinstance(reg, PostgresRegistry)
        assert reg.list() == []
    with psycopg.connect(postgres_url) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert tables == {
        "alembic_version",
        "model_names",
        "model_versions",
        "model_aliases",
        "artifact_chunks",
    }
    assert head == ("0001",)
    # Opening again is a no-op at head.
    open_registry(settings_for(postgres_url, tmp_path)).close()


def test_publish_list_promote_and_fetch_on_another_host(
    registry: Registry, postgres_url: str, pipeline: Pipeline, tabserve_home: Path, tmp_path: Path
) -> None:
    first = registry.publish(stage(pipeline, tabserve_home))
    second = registry.publish(stage(pipeline, tabserve_home))
    assert (first.version, second.version) == (1, 2)
    registry.promote("iris", 1, "production")
    assert [(r.ref, r.aliases) for r in registry.list()] == [
        ("iris:1", ["production"]),
        ("iris:2", []),
    ]
    # Nothing of the artifact stays on this host's disk: the files live in the database.
    assert not (tabserve_home / "models").exists()

    other_home = tmp_path / "other-host"
    with open_registry(settings_for(postgres_url, other_home)) as other:
        manifest, path = other.fetch("iris")
        assert manifest.version == 1
        assert path.is_relative_to(other_home / "cache")
        assert store.verify(path).files == first.files
        assert (path / "report" / "metrics.json").read_bytes() == b'{"accuracy": 0.933}'
        loaded = store.load_pipeline(path, manifest)
        assert loaded.predict(_row(pipeline)).tolist() == [2]  # type: ignore[attr-defined]
        # A second fetch uses the verified cache.
        assert other.fetch("iris@production")[1] == path


def _row(pipeline: Pipeline) -> object:
    import pandas as pd

    return pd.DataFrame([[7.7, 3.0, 6.1, 2.3]], columns=list(pipeline.feature_names_in_))


def test_large_files_are_stored_in_chunks(
    registry: Registry,
    pipeline: Pipeline,
    tabserve_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    monkeypatch.setattr(pg_registry, "CHUNK_BYTES", 1000)
    registry.publish(stage(pipeline, tabserve_home))
    with psycopg.connect(postgres_url) as conn:
        (chunks,) = conn.execute(
            "SELECT count(*) FROM artifact_chunks WHERE path = 'model.skops'"
        ).fetchone()  # type: ignore[misc]
    assert chunks > 3
    with open_registry(settings_for(postgres_url, tmp_path / "h2")) as other:
        manifest, path = other.fetch("iris:1")
        assert store.verify(path).files == manifest.files


def test_a_tampered_bytea_row_is_refused(
    registry: Registry, postgres_url: str, pipeline: Pipeline, tabserve_home: Path, tmp_path: Path
) -> None:
    published = registry.publish(stage(pipeline, tabserve_home))
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "UPDATE artifact_chunks SET data = set_byte(data, 100, get_byte(data, 100) # 1) "
            "WHERE name = 'iris' AND version = 1 AND path = 'model.skops' AND seq = 0"
        )
    other_home = tmp_path / "fresh-host"
    with (
        open_registry(settings_for(postgres_url, other_home)) as other,
        pytest.raises(IntegrityError) as caught,
    ):
        other.fetch("iris:1")
    message = caught.value.message
    assert f"manifest says {published.files['model.skops']}" in message
    assert "model.skops: sha256 is" in message
    # Nothing half-fetched is left in the cache.
    assert not any((other_home / "cache").rglob("model.skops"))


def test_delete_removes_rows_and_cache(
    registry: Registry, postgres_url: str, pipeline: Pipeline, tabserve_home: Path
) -> None:
    registry.publish(stage(pipeline, tabserve_home))
    _, path = registry.fetch("iris:1")
    registry.delete("iris", 1)
    assert not path.exists()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM artifact_chunks").fetchone() == (0,)
    with pytest.raises(ModelNotFoundError):
        registry.fetch("iris")


def test_failure_mid_publish_leaves_nothing_visible(
    registry: Registry,
    postgres_url: str,
    pipeline: Pipeline,
    tabserve_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_row = Registry._row

    def row_then_fail(self: Registry, manifest: object) -> dict[str, object]:
        raise OSError("connection lost")

    monkeypatch.setattr(Registry, "_row", row_then_fail)
    with pytest.raises(OSError, match="connection lost"):
        registry.publish(stage(pipeline, tabserve_home))
    monkeypatch.setattr(Registry, "_row", real_row)
    assert registry.list() == []
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM artifact_chunks").fetchone() == (0,)


PUBLISH = """
import sys
from pathlib import Path
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
with open_registry(Settings(registry_url=sys.argv[2], home=sys.argv[3])) as reg:
    print(reg.publish(Path(sys.argv[1])).version)
"""


def test_concurrent_publishes_from_processes_get_distinct_versions(
    postgres_url: str, pipeline: Pipeline, tabserve_home: Path
) -> None:
    folders = [stage(pipeline, tabserve_home) for _ in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISH, str(f), postgres_url, str(tabserve_home)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for f in folders
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert sorted(int(o) for o in outputs) == [1, 2, 3]


def test_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    from tests.support.net import free_port

    url = f"postgresql://tabserve:hunter2@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(DatabaseError) as caught:
        open_registry(settings_for(url, tmp_path))
    assert "hunter2" not in caught.value.message
    assert "reachable" in caught.value.message


def test_password_comes_from_the_environment(
    password_postgres: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = password_postgres.url(password="")  # type: ignore[attr-defined]
    monkeypatch.setenv("TABSERVE_REGISTRY_URL", url)
    monkeypatch.setenv("TABSERVE_HOME", str(tmp_path))
    monkeypatch.setenv("TABSERVE_DB_PASSWORD", "s3cret-admin")
    with open_registry(Settings()) as reg:  # type: ignore[call-arg]
        assert reg.list() == []
        assert "s3cret" not in reg.where
    monkeypatch.setenv("TABSERVE_DB_PASSWORD", "wrong")
    with pytest.raises(DatabaseError) as caught:
        open_registry(Settings())  # type: ignore[call-arg]
    assert "wrong" not in caught.value.message
