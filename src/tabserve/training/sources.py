"""Where training data comes from: the Iris data, a CSV file, or a Postgres table.

The database password never travels on argv: it comes from TABSERVE_DB_PASSWORD (or the
file TABSERVE_DB_PASSWORD_FILE) and is put into the SQLAlchemy URL object here, so it never
appears in a message, a log line or the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tabserve.errors import DatabaseError, DataSourceError, UsageError
from tabserve.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_TARGET = "target"
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Dataset:
    """Features and target as read, the default model name and where the data came from."""

    X: pd.DataFrame
    y: pd.Series
    name: str
    description: str  # never holds a password


def iris_frame() -> pd.DataFrame:
    """The Iris data with tabserve's feature names and the integer target 0/1/2."""
    from sklearn.datasets import load_iris

    bunch = load_iris()  # shipped inside scikit-learn: no download
    frame = pd.DataFrame(bunch.data, columns=IRIS_FEATURES)
    frame[IRIS_TARGET] = bunch.target.astype("int64")
    return frame


def _iris(spec: str, table: str | None, target: str | None, settings: Settings) -> Dataset:
    if spec.lower() != "iris":
        raise DataSourceError(f"unknown source {spec!r}: {_KNOWN}")
    if table is not None:
        raise UsageError("--table is only for a postgresql:// source: drop it for --source iris")
    if target not in {None, IRIS_TARGET}:
        raise DataSourceError(
            f"the Iris data's target column is {IRIS_TARGET!r}, not {target!r}: drop --target"
        )
    frame = iris_frame()
    return Dataset(X=frame[IRIS_FEATURES], y=frame[IRIS_TARGET], name="iris", description="iris")


def split_target(
    frame: pd.DataFrame, target: str | None, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a table; rows without a target are left out."""
    if target is None:
        raise UsageError(
            f"name the column to predict with --target COL; {where} has {list(frame.columns)}"
        )
    if target not in frame.columns:
        raise DataSourceError(
            f"target column {target!r} is not in {where}: its columns are {list(frame.columns)}"
        )
    frame = frame[frame[target].notna()]
    if frame.empty:
        raise DataSourceError(f"{where} has no rows with a value in {target!r}: add data")
    if frame.shape[1] < 2:
        raise DataSourceError(f"{where} has no feature columns besides {target!r}")
    X = frame.drop(columns=[target]).reset_index(drop=True)
    X.columns = [str(c) for c in X.columns]
    return X, frame[target].reset_index(drop=True)


def _csv(spec: str, table: str | None, target: str | None, settings: Settings) -> Dataset:
    path = Path(spec.split(":", 1)[1])
    if table is not None:
        raise UsageError("--table is only for a postgresql:// source: drop it for a CSV")
    if not path.is_file():
        raise DataSourceError(f"CSV file {path} does not exist: check the path after csv:")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise DataSourceError(
            f"CSV file {path} is empty: give a file with a header and rows"
        ) from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataSourceError(f"CSV file {path} is not a readable CSV: {error}") from error
    if frame.empty:
        raise DataSourceError(f"CSV file {path} has a header but no rows: add data")
    X, y = split_target(frame, target, f"CSV file {path}")
    return Dataset(X=X, y=y, name=path.stem, description=f"csv:{path.name}")


def database_url(spec: str, settings: Settings) -> URL:
    """The SQLAlchemy URL for a postgresql:// spec, with the password from the environment."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(spec)
    except ArgumentError as error:
        raise UsageError("invalid database URL: use postgresql://USER@HOST:PORT/DB") from error
    if url.password is not None:
        raise UsageError(
            "the database URL holds a password, which would show in the process list and the "
            "shell history: drop it from the URL and set TABSERVE_DB_PASSWORD "
            "(or TABSERVE_DB_PASSWORD_FILE) instead"
        )
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise UsageError(f"unsupported database {url.get_backend_name()!r}: use postgresql://")
    if not url.database:
        raise UsageError("the database URL names no database: use postgresql://USER@HOST:PORT/DB")
    try:
        password = settings.database_password()
    except OSError as error:
        raise UsageError(
            f"TABSERVE_DB_PASSWORD_FILE {settings.db_password_file} can't be read: "
            f"{error.strerror}; check the path and its permissions"
        ) from error
    url = url.set(drivername="postgresql+psycopg")
    return url.set(password=password) if password else url


def describe_url(url: URL) -> str:
    """host:port/db as user, for messages: never the password."""
    return f"postgresql://{url.username or ''}@{url.host or ''}:{url.port or 5432}/{url.database}"


def database_error(error: Exception, url: URL) -> DatabaseError:
    """One clean DatabaseError for a SQLAlchemy/psycopg error, without the password."""
    where = describe_url(url)
    text = str(getattr(error, "orig", None) or error).lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return DatabaseError(
            f"the database refused user {url.username!r} at {where}: wrong or missing password; "
            "set TABSERVE_DB_PASSWORD (or TABSERVE_DB_PASSWORD_FILE) to the role's password"
        )
    if "does not exist" in text and "database" in text:
        return DatabaseError(f"database {url.database!r} does not exist at {where}: check the URL")
    if "permission denied" in text or "must be owner" in text:
        return DatabaseError(
            f"user {url.username!r} lacks the privilege at {where}: GRANT it to the role "
            "(SELECT to train, ownership or CREATE to load data), or connect as another user"
        )
    return DatabaseError(
        f"can't reach the database at {where}: check that it runs and that host and port are "
        f"right ({type(getattr(error, 'orig', None) or error).__name__})"
    )


def connect(url: URL) -> Engine:
    """An engine that fails fast when the server is unreachable."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # NullPool: one short read per command, nothing left open afterwards.
    return create_engine(
        url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, poolclass=NullPool
    )


def _table_parts(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    if not name:
        raise UsageError(f"invalid table name {table!r}: use TABLE or SCHEMA.TABLE")
    return schema or None, name


def read_table(url: URL, table: str) -> pd.DataFrame:
    """Every row of a table, read through SQLAlchemy reflection (names quoted, never formatted)."""
    from sqlalchemy import MetaData, Table, select
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    schema, name = _table_parts(table)
    engine = connect(url)
    try:
        with engine.connect() as conn:
            reflected = Table(name, MetaData(), schema=schema, autoload_with=conn)
            result = conn.execute(select(reflected))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except NoSuchTableError as error:
        raise DataSourceError(
            f"table {table!r} does not exist in {describe_url(url)} (or the role may not see it): "
            "check --table, or load it with `tabserve data load-iris`"
        ) from error
    except SQLAlchemyError as error:
        raise database_error(error, url) from error
    finally:
        engine.dispose()
    # NUMERIC arrives as Decimal objects: make such columns float so they count as numbers.
    for column in frame.columns:
        if frame[column].dtype == object:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted.astype("float64")
    return frame


def _postgres(spec: str, table: str | None, target: str | None, settings: Settings) -> Dataset:
    url = database_url(spec, settings)
    if not table:
        raise UsageError("name the table to read with --table T (and the target with --target)")
    frame = read_table(url, table)
    where = f"table {table!r}"
    if frame.empty:
        raise DataSourceError(f"{where} in {describe_url(url)} has no rows: load data first")
    X, y = split_target(frame, target, where)
    return Dataset(
        X=X, y=y, name=_table_parts(table)[1], description=f"{describe_url(url)} table {table}"
    )


Loader = Callable[[str, str | None, str | None, Settings], Dataset]

SOURCES: dict[str, Loader] = {
    "iris": _iris,
    "csv": _csv,
    "postgresql": _postgres,
    "postgres": _postgres,
}
_KNOWN = "use iris, csv:PATH or postgresql://USER@HOST:PORT/DB"


def load_source(spec: str, *, table: str | None, target: str | None, settings: Settings) -> Dataset:
    """Read the data a --source spec names."""
    kind = spec.split(":", 1)[0].lower() if ":" in spec else spec.lower()
    loader = SOURCES.get(kind)
    if loader is None:
        raise DataSourceError(f"unknown source {spec!r}: {_KNOWN}")
    return loader(spec, table, target, settings)


def load_iris_table(spec: str, table: str, settings: Settings) -> int:
    """Write the Iris data into a Postgres table (replaced if it exists); return the row count."""
    from sqlalchemy.exc import SQLAlchemyError

    url = database_url(spec, settings)
    schema, name = _table_parts(table)
    frame = iris_frame()
    engine = connect(url)
    try:
        with engine.begin() as conn:
            # to_sql quotes the table name through SQLAlchemy; replace keeps re-runs idempotent.
            frame.to_sql(name, conn, schema=schema, if_exists="replace", index=False)
    except SQLAlchemyError as error:
        raise database_error(error, url) from error
    finally:
        engine.dispose()
    return len(frame)
