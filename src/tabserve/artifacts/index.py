"""The registry's index in SQL (SQLite or Postgres, SQLAlchemy Core), migrated with Alembic.

Tables (created by `migrations/versions/`):
    model_names     name -> last version handed out (versions are never reused)
    model_versions  one row per published version, with its manifest JSON
    model_aliases   (name, alias) -> version, e.g. iris@production -> 3
    artifact_chunks the artifact files themselves, for the Postgres registry
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from tabserve.errors import DatabaseError

metadata = sa.MetaData()

model_names = sa.Table(
    "model_names",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("task", sa.String(20), nullable=False),
    sa.Column("runtime", sa.String(20), nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

artifact_chunks = sa.Table(
    "artifact_chunks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("path", sa.String(255), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# One SQL statement that hands out the next version atomically on both SQLite and Postgres.
_ALLOCATE = sa.text(
    "INSERT INTO model_names (name, last_version) VALUES (:name, 1) "
    "ON CONFLICT (name) DO UPDATE SET last_version = model_names.last_version + 1 "
    "RETURNING last_version"
)


def sqlite_engine(path: Path) -> Engine:
    """An engine on the SQLite index whose transactions take the write lock at BEGIN."""
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})

    # pysqlite's implicit transactions start late and can't be upgraded safely under
    # concurrency; BEGIN IMMEDIATE serialises writers across threads and processes.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# Alembic's `context` and `op` are module-level proxies: one migration per process at a time.
_MIGRATING = threading.Lock()


def migrate(engine: Engine) -> None:
    """Create or upgrade the index schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with _MIGRATING, engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn SQLAlchemy's operational errors into one DatabaseError that says what failed."""
    try:
        yield
    except sa.exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseError(
            f"{what} failed: {reason}; check that the database is up and reachable"
        ) from error
    except sa.exc.InterfaceError as error:
        raise DatabaseError(f"{what} failed: {error.orig}") from error


def allocate(conn: Connection, name: str) -> int:
    """The next version of `name` (1 for a new name); never one handed out before."""
    return int(conn.execute(_ALLOCATE, {"name": name}).scalar_one())
