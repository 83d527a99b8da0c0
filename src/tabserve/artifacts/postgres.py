"""The Postgres registry: index and artifact files (bytea chunks) in one database.

Any host that reaches the database can load a model: `fetch` streams the files into
TABSERVE_HOME/cache/NAME/VERSION-<manifest hash>/, checking each sha256 on the way out.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from tabserve.artifacts import index, store
from tabserve.artifacts.index import artifact_chunks, model_versions
from tabserve.artifacts.registry import Registry, check_manifest_matches, discard
from tabserve.errors import IntegrityError, UsageError
from tabserve.settings import Settings
from tabserve.types import Manifest

CHUNK_BYTES = 4 * 1024 * 1024


class PostgresRegistry(Registry):
    """Index and files in Postgres; a verified cache of fetched versions in TABSERVE_HOME."""

    @classmethod
    def open(cls, settings: Settings) -> PostgresRegistry:
        """Connect, migrate the schema, and return the registry."""
        if settings.registry_url is None:
            raise UsageError(
                "TABSERVE_REGISTRY_URL is not set: give postgresql://USER@HOST:PORT/DB"
            )
        raw = settings.registry_url.get_secret_value()
        try:
            url = make_url(raw)
        except sa.exc.ArgumentError as error:
            raise UsageError(
                "TABSERVE_REGISTRY_URL is not a database URL: use postgresql://USER@HOST:PORT/DB"
            ) from error
        if url.get_backend_name() != "postgresql":
            raise UsageError(
                f"TABSERVE_REGISTRY_URL must start with postgresql://, not {url.drivername}://"
            )
        url = url.set(drivername="postgresql+psycopg")
        password = settings.database_password()
        if url.password is None and password is not None:
            url = url.set(password=password)
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        return cls(engine, settings.home.absolute(), url.render_as_string(hide_password=True))

    def _store(self, staged: Path, manifest: Manifest) -> None:
        # One transaction: files and index row become visible together, or not at all.
        with self._begin() as conn:
            for rel in sorted(manifest.files):
                with (staged / rel).open("rb") as f:
                    seq = 0
                    while chunk := f.read(CHUNK_BYTES):
                        conn.execute(
                            sa.insert(artifact_chunks).values(
                                name=manifest.name,
                                version=manifest.version,
                                path=rel,
                                seq=seq,
                                data=chunk,
                            )
                        )
                        seq += 1
            conn.execute(sa.insert(model_versions).values(**self._row(manifest)))
        discard(staged, self.home)

    def _cache_dir(self, manifest: Manifest) -> Path:
        digest = hashlib.sha256(store.encode_manifest(manifest)).hexdigest()[:16]
        return self.home / "cache" / manifest.name / f"{manifest.version}-{digest}"

    def fetch(self, ref: str) -> tuple[Manifest, Path]:
        """Stream the version's files into the local cache (once) and return the verified folder."""
        record = self.resolve(ref)
        manifest = self.manifest(record.name, record.version)
        check_manifest_matches(manifest, record.name, record.version)
        target = self._cache_dir(manifest)
        if not target.exists():
            self._download(manifest, target)
        cached = store.verify(target)
        if cached.files != manifest.files:
            raise IntegrityError(
                f"the cached copy {target} differs from the registry's {manifest.ref}: "
                f"remove {target} and fetch again"
            )
        return cached, target

    def _download(self, manifest: Manifest, target: Path) -> None:
        folder = store.new_temp_dir(self.home, "fetch-")
        try:
            with (
                index.translated(f"fetching {manifest.ref} from {self.where}"),
                self._begin() as conn,
            ):
                for rel, expected in manifest.files.items():
                    self._stream_file(conn, manifest, store.check_relpath(rel), expected, folder)
            store.write_manifest(folder, manifest)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                folder.rename(target)
            except OSError:
                if not target.exists():  # not a concurrent fetch that got there first
                    raise
            store.fsync_dir(target.parent)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _stream_file(
        self, conn: Connection, manifest: Manifest, rel: str, expected: str, folder: Path
    ) -> None:
        digest = hashlib.sha256()
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = conn.execute(
            sa.select(artifact_chunks.c.data)
            .where(
                artifact_chunks.c.name == manifest.name,
                artifact_chunks.c.version == manifest.version,
                artifact_chunks.c.path == rel,
            )
            .order_by(artifact_chunks.c.seq),
            execution_options={"yield_per": 1},
        )
        with path.open("wb") as f:
            for (data,) in rows:
                digest.update(data)
                f.write(data)
        actual = digest.hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"{manifest.ref} {rel}: sha256 is {actual}, manifest says {expected}: "
                "the artifact was changed or truncated in the database; re-train or re-import it"
            )

    def _remove_files(self, conn: Connection, name: str, version: int) -> None:
        conn.execute(
            sa.delete(artifact_chunks).where(
                artifact_chunks.c.name == name, artifact_chunks.c.version == version
            )
        )
        for cached in (self.home / "cache" / name).glob(f"{version}-*"):
            discard(cached, self.home)
