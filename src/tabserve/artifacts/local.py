"""The embedded registry: TABSERVE_HOME/models/NAME/VERSION/ folders and a SQLite index."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tabserve.artifacts import index, store
from tabserve.artifacts.index import model_versions
from tabserve.artifacts.refs import check_name, check_version
from tabserve.artifacts.registry import Registry, check_manifest_matches, discard
from tabserve.errors import ArtifactError, IntegrityError
from tabserve.settings import Settings
from tabserve.types import Manifest


class LocalRegistry(Registry):
    """Artifact folders on disk, indexed in TABSERVE_HOME/registry.db."""

    @classmethod
    def open(cls, settings: Settings) -> LocalRegistry:
        """Open (creating and migrating if needed) the registry in settings.home."""
        home = settings.home.absolute()
        (home / "models").mkdir(parents=True, exist_ok=True)
        return cls(index.sqlite_engine(home / "registry.db"), home, str(home))

    def version_dir(self, name: str, version: int) -> Path:
        """models/NAME/VERSION, checked to stay inside TABSERVE_HOME."""
        models = (self.home / "models").resolve()
        path = models / check_name(name) / str(check_version(version))
        if not path.resolve().is_relative_to(models):
            raise ArtifactError(f"{path} leads outside {models}: remove the symlink")
        return path

    def _store(self, staged: Path, manifest: Manifest) -> None:
        target = self.version_dir(manifest.name, manifest.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The rename is the commit point of the files; the index row makes them visible.
        staged.rename(target)
        store.fsync_dir(target.parent)
        try:
            self.write_index_row(manifest)
        except BaseException:
            discard(target, self.home)
            raise

    def write_index_row(self, manifest: Manifest) -> None:
        """Insert the version's index row: from here on the version is visible."""
        with self._begin() as conn:
            conn.execute(sa.insert(model_versions).values(**self._row(manifest)))

    def fetch(self, ref: str) -> tuple[Manifest, Path]:
        """The verified folder of the referenced version."""
        record = self.resolve(ref)
        path = self.version_dir(record.name, record.version)
        indexed = self.manifest(record.name, record.version)
        manifest = check_manifest_matches(store.verify(path), record.name, record.version)
        if manifest.files != indexed.files:
            raise IntegrityError(
                f"{path / store.MANIFEST} differs from the registry's copy of {manifest.ref}: "
                "the artifact was changed; re-train or re-import it"
            )
        return manifest, path

    def _remove_files(self, conn: Connection, name: str, version: int) -> None:
        discard(self.version_dir(name, version), self.home)
