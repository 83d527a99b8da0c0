"""The model registry: versions 1, 2, 3 ... per name, aliases, and a verified local folder per version.

Two variants behind one class, chosen by `TABSERVE_REGISTRY_URL`:
    unset           LocalRegistry: folders under TABSERVE_HOME/models + SQLite index registry.db
    postgresql://   PostgresRegistry: index and artifact files in Postgres, fetched into a cache

A version becomes visible only when its index row is committed, after its files are complete.
"""

from __future__ import annotations

import abc
import builtins
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tabserve.artifacts import index, store
from tabserve.artifacts.index import model_aliases, model_versions
from tabserve.artifacts.refs import check_alias, check_name, check_version, parse_ref
from tabserve.errors import ArtifactError, ModelNotFoundError
from tabserve.settings import Settings
from tabserve.types import Manifest


class ModelRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One registered version as `models list` shows it."""

    name: str
    version: int
    created_at: str
    aliases: list[str]
    task: str
    runtime: str
    metrics: dict[str, float]

    @property
    def ref(self) -> str:
        """`name:version`."""
        return f"{self.name}:{self.version}"


def metrics_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The top-level numeric metrics (accuracy, f1, rmse ...) of a manifest."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


class Registry(abc.ABC):
    """Index queries shared by both variants; subclasses store, fetch and remove the files."""

    def __init__(self, engine: Engine, home: Path, where: str) -> None:
        self.engine = engine
        self.home = home
        self.where = where  # for messages: the folder or the URL without its password
        with index.translated(f"opening the registry at {where}"):
            index.migrate(engine)

    # -- variant-specific -------------------------------------------------------------------

    @abc.abstractmethod
    def _store(self, staged: Path, manifest: Manifest) -> None:
        """Make the staged files permanent and insert the index row, visible on commit."""

    @abc.abstractmethod
    def fetch(self, ref: str) -> tuple[Manifest, Path]:
        """A verified local folder holding the referenced version."""

    @abc.abstractmethod
    def _remove_files(self, conn: Connection, name: str, version: int) -> None:
        """Remove a version's files (inside the index transaction where the variant allows)."""

    # -- shared -----------------------------------------------------------------------------

    def _begin(self) -> Any:
        return self.engine.begin()

    def publish(self, staged: Path) -> Manifest:
        """Register a staged artifact folder as the next version of its name; return its manifest.

        The staged folder is consumed: moved into place on success, removed on failure.
        """
        try:
            manifest = store.verify(staged)
            name = check_name(manifest.name)
            with index.translated(f"publishing {name} to {self.where}"):
                with self._begin() as conn:
                    version = index.allocate(conn, name)
                manifest = msgspec.structs.replace(manifest, version=version)
                store.write_manifest(staged, manifest)
                self._store(staged, manifest)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return manifest

    def _row(self, manifest: Manifest) -> dict[str, Any]:
        encoded = store.encode_manifest(manifest)
        return {
            "name": manifest.name,
            "version": manifest.version,
            "created_at": manifest.created_at,
            "task": manifest.task,
            "runtime": manifest.runtime.kind,
            "manifest": encoded.decode("utf-8"),
            "manifest_sha256": store.sha256_bytes(encoded),
        }

    def list(self) -> list[ModelRecord]:
        """Every registered version, by name then version."""
        return self._records()

    def _records(
        self, name: str | None = None, version: int | None = None
    ) -> builtins.list[ModelRecord]:
        query = sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
        aliases = sa.select(model_aliases)
        if name is not None:
            query = query.where(model_versions.c.name == name)
            aliases = aliases.where(model_aliases.c.name == name)
        if version is not None:
            query = query.where(model_versions.c.version == version)
        with index.translated(f"reading the registry at {self.where}"), self._begin() as conn:
            rows = conn.execute(query).all()
            alias_rows = conn.execute(aliases).all()
        by_version: dict[tuple[str, int], list[str]] = {}
        for a in alias_rows:
            by_version.setdefault((a.name, a.version), []).append(a.alias)
        records = []
        for row in rows:
            manifest = store.decode_manifest(row.manifest, f"index row {row.name}:{row.version}")
            records.append(
                ModelRecord(
                    name=row.name,
                    version=row.version,
                    created_at=row.created_at,
                    aliases=sorted(by_version.get((row.name, row.version), [])),
                    task=row.task,
                    runtime=row.runtime,
                    metrics=metrics_summary(manifest.metrics),
                )
            )
        return records

    def _not_found(self, what: str, name: str) -> ModelNotFoundError:
        records = self.list()
        if not records:
            return ModelNotFoundError(
                f"{what} not found: the registry at {self.where} is empty; "
                "train or import a model first"
            )
        names: dict[str, list[str]] = {}
        for r in records:
            names.setdefault(r.name, []).append(
                str(r.version) + "".join(f" @{a}" for a in r.aliases)
            )
        if name in names:
            known = f"{name} has versions {', '.join(names[name])}"
        else:
            known = "registered: " + "; ".join(f"{n} ({', '.join(v)})" for n, v in names.items())
        return ModelNotFoundError(f"{what} not found: {known}")

    def manifest(self, name: str, version: int) -> Manifest:
        """The indexed manifest of one version (not yet checked against the files)."""
        with index.translated(f"reading the registry at {self.where}"), self._begin() as conn:
            text = conn.execute(
                sa.select(model_versions.c.manifest).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).scalar_one_or_none()
        if text is None:
            raise self._not_found(f"model {name}:{version}", name)
        return store.decode_manifest(text, f"index row {name}:{version}")

    def resolve(self, ref: str) -> ModelRecord:
        """The version a reference names: NAME:VERSION, NAME@ALIAS, or NAME (production, else newest)."""
        parsed = parse_ref(ref)
        with index.translated(f"reading the registry at {self.where}"), self._begin() as conn:
            aliases = dict(
                conn.execute(
                    sa.select(model_aliases.c.alias, model_aliases.c.version).where(
                        model_aliases.c.name == parsed.name
                    )
                ).all()
            )
            versions = set(
                conn.execute(
                    sa.select(model_versions.c.version).where(model_versions.c.name == parsed.name)
                ).scalars()
            )
        if parsed.version is not None:
            version: int | None = parsed.version if parsed.version in versions else None
        elif parsed.alias is not None:
            version = aliases.get(parsed.alias)
        else:
            version = aliases.get("production", max(versions, default=None))
        if version is None or version not in versions:
            raise self._not_found(f"model {ref!r}", parsed.name)
        records = self._records(parsed.name, version)
        if not records:  # deleted between the two reads
            raise self._not_found(f"model {ref!r}", parsed.name)
        return records[0]

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for one name."""
        check_name(name)
        with index.translated(f"reading the registry at {self.where}"), self._begin() as conn:
            rows = conn.execute(
                sa.select(model_aliases.c.alias, model_aliases.c.version)
                .where(model_aliases.c.name == name)
                .order_by(model_aliases.c.alias)
            ).all()
        return {alias: int(version) for alias, version in rows}

    def promote(self, name: str, version: int, alias: str) -> None:
        """Point `name@alias` at `version` (moving it if it pointed elsewhere)."""
        check_name(name)
        version = check_version(version)
        check_alias(alias)
        with index.translated(f"promoting in {self.where}"), self._begin() as conn:
            exists = conn.execute(
                sa.select(model_versions.c.version).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).scalar_one_or_none()
            if exists is not None:
                conn.execute(
                    sa.delete(model_aliases).where(
                        model_aliases.c.name == name, model_aliases.c.alias == alias
                    )
                )
                conn.execute(
                    sa.insert(model_aliases).values(name=name, alias=alias, version=version)
                )
        if exists is None:
            raise self._not_found(f"model {name}:{version}", name)

    def delete(self, name: str, version: int) -> None:
        """Remove one version, its aliases and its files."""
        check_name(name)
        version = check_version(version)
        with index.translated(f"deleting from {self.where}"), self._begin() as conn:
            deleted = conn.execute(
                sa.delete(model_versions).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).rowcount
            if deleted:
                conn.execute(
                    sa.delete(model_aliases).where(
                        model_aliases.c.name == name, model_aliases.c.version == version
                    )
                )
                self._remove_files(conn, name, version)
        if not deleted:
            raise self._not_found(f"model {name}:{version}", name)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def discard(path: Path, home: Path) -> None:
    """Remove a folder by first renaming it into TABSERVE_HOME/tmp, so no half-deleted folder is seen."""
    if not path.exists():
        return
    trash = store.new_temp_dir(home, "trash-")
    path.rename(trash / "x")
    shutil.rmtree(trash, ignore_errors=True)


def check_manifest_matches(manifest: Manifest, name: str, version: int) -> Manifest:
    """Refuse a folder whose manifest names another model or version than the index."""
    if manifest.name != name or manifest.version != version:
        raise ArtifactError(
            f"the artifact folder of {name}:{version} holds {manifest.ref}: "
            "the registry's files were moved by hand; re-publish the model"
        )
    return manifest


def open_registry(settings: Settings) -> Registry:
    """The registry the settings name: Postgres when TABSERVE_REGISTRY_URL is set, else the folder."""
    if settings.registry_url is not None:
        from tabserve.artifacts.postgres import PostgresRegistry

        return PostgresRegistry.open(settings)
    from tabserve.artifacts.local import LocalRegistry

    return LocalRegistry.open(settings)
