"""Where the prediction log lands: SQLite in TABSERVE_HOME (default) or PostgreSQL.

Both sinks create their tables on open and insert idempotently on (request_id, row, role), so a
segment shipped twice never duplicates a row. Feedback is stored under the id the client sent and
matched when read: as the server's request id first, else as the client's X-Request-ID (indexed
on (model, client_request_id) over the rows that have one), so a label arriving before its row
was shipped is not lost. psycopg and sqlite3 errors become DatabaseError here, at this one
boundary. Variants live in the plain dict SINKS.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import msgspec

from tabserve.errors import DatabaseError, UsageError
from tabserve.monitoring.records import LogRow
from tabserve.settings import Settings

# 2: index on (model, client_request_id) for feedback by client id; 3: that index holds only the
# rows that have a client id (most have none, and each cost the shipper an index insert).
SCHEMA_VERSION = 3
# The client-id index, partial: `client_request_id = ?` implies IS NOT NULL in both dialects'
# planners, so every lookup by client id still uses it.
CLIENT_INDEX = (
    "CREATE INDEX IF NOT EXISTS prediction_log_model_client ON prediction_log "
    "(model, client_request_id) WHERE client_request_id IS NOT NULL"
)
COLUMNS = (
    "request_id",
    "row",
    "client_request_id",
    "ts",
    "model",
    "version",
    "role",
    "input",
    "output",
    "latency_ms",
)


class StoredRow(NamedTuple):
    """A logged prediction read back, with its true label when feedback arrived."""

    request_id: str
    row: int
    ts: float
    version: int
    role: str
    input: Any  # {feature: value}, or {"sha256": digest}
    output: dict[str, Any]  # {"label": ..., "proba": [...]}
    label: Any  # the true label from feedback, or None


class Sink(Protocol):
    """A prediction-log store."""

    def open(self) -> None: ...

    def write(self, rows: Sequence[LogRow]) -> int: ...

    def prune(self, before: float) -> int: ...

    def fetch(self, model: str, since: float, role: str = "live") -> list[StoredRow]: ...

    def add_feedback(self, model: str, items: Sequence[tuple[str, int, Any]]) -> int: ...

    def labelled(self, model: str, since: float, limit: int) -> list[StoredRow]: ...

    def close(self) -> None: ...


def _describe(url: str) -> str:
    """A URL fit for messages: the password never appears."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


# Which logged row a feedback item labels: the row whose server request id is the item's id;
# failing that (no request has that server id), the rows of the same model whose client
# X-Request-ID is the item's id. Both lookups are indexed; the SQL is the same in both dialects.
# Retention deletes by (model, time) so that each DELETE is a range of the (model, ts) index:
# `WHERE ts < ?` alone found no index to use and read the whole table, hourly, in the shipper
# (seconds on a log of a few million rows, while the workers served). The models come from
# the same index, one lookup per model (a loose index scan), never a table scan.
_PRUNED = (("prediction_log", "ts"), ("prediction_feedback", "received_at"))


def _models_sql(table: str) -> str:
    return (
        f"WITH RECURSIVE m(model) AS (SELECT min(model) FROM {table} UNION ALL "  # noqa: S608 (constant names)
        f"SELECT (SELECT min(model) FROM {table} WHERE model > m.model) FROM m "
        "WHERE m.model IS NOT NULL) SELECT model FROM m WHERE model IS NOT NULL"
    )


def _prune(db: Any, cutoff: object, mark: str) -> int:
    """Retention on either dialect (`mark`: its parameter marker); returns log rows deleted."""
    deleted = 0
    for table, column in _PRUNED:
        for (model,) in db.execute(_models_sql(table)).fetchall():
            cur = db.execute(
                f"DELETE FROM {table} WHERE model = {mark} AND {column} < {mark}",  # noqa: S608 (constant names)
                (model, cutoff),
            )
            if table == "prediction_log":
                deleted += int(cur.rowcount)
    return deleted


_NOT_A_SERVER_ID = "NOT EXISTS (SELECT 1 FROM prediction_log s WHERE s.request_id = {f}.request_id)"
_ROW_OF_FEEDBACK = (
    'p."row" = f."row" AND p.role = \'live\' AND (p.request_id = f.request_id OR '
    "(p.model = f.model AND p.client_request_id = f.request_id AND "
    + _NOT_A_SERVER_ID.format(f="f")
    + "))"
)
_FEEDBACK_OF_ROW = (
    "LEFT JOIN prediction_feedback fs "
    'ON fs.request_id = p.request_id AND fs."row" = p."row" '
    "LEFT JOIN prediction_feedback fc "
    'ON fc.request_id = p.client_request_id AND fc."row" = p."row" AND fc.model = p.model AND '
    + _NOT_A_SERVER_ID.format(f="fc")
)


def _migrate_sqlite(conn: sqlite3.Connection) -> None:
    """Bring a log made by an older tabserve to SCHEMA_VERSION, in one write transaction."""
    conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others then find it done
    try:
        partial = {row[1]: row[4] for row in conn.execute("PRAGMA index_list(prediction_log)")}
        if partial.get("prediction_log_model_client") == 0:
            conn.execute("DROP INDEX prediction_log_model_client")  # v2: over every row
        conn.execute(CLIENT_INDEX)
        conn.execute(
            "UPDATE prediction_log_schema SET version = ? WHERE version < ?",
            (SCHEMA_VERSION, SCHEMA_VERSION),
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the error that got here is the one to report
            conn.execute("ROLLBACK")
        raise


class SqliteSink:
    """The embedded default: one SQLite file (WAL) in TABSERVE_HOME."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def open(self) -> None:
        """Connect and create the tables."""
        if self._conn is None:
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS prediction_log (
                    request_id TEXT NOT NULL, row INTEGER NOT NULL, client_request_id TEXT,
                    ts REAL NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
                    role TEXT NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL,
                    latency_ms REAL NOT NULL, PRIMARY KEY (request_id, row, role));
                CREATE INDEX IF NOT EXISTS prediction_log_model_ts ON prediction_log (model, ts);
                CREATE TABLE IF NOT EXISTS prediction_feedback (
                    request_id TEXT NOT NULL, row INTEGER NOT NULL, model TEXT NOT NULL,
                    label TEXT NOT NULL, received_at REAL NOT NULL,
                    PRIMARY KEY (request_id, row));
                CREATE INDEX IF NOT EXISTS prediction_feedback_model
                    ON prediction_feedback (model, received_at);
                CREATE TABLE IF NOT EXISTS prediction_log_schema (version INTEGER NOT NULL);
                """
            )
            if conn.execute("SELECT count(*) FROM prediction_log_schema").fetchone()[0] == 0:
                conn.execute("INSERT INTO prediction_log_schema VALUES (?)", (SCHEMA_VERSION,))
            _migrate_sqlite(conn)
        except (sqlite3.Error, OSError) as error:
            raise DatabaseError(
                f"cannot open the prediction log {self.path}: {error}; check the folder is writable"
            ) from error
        return conn

    def write(self, rows: Sequence[LogRow]) -> int:
        """Insert rows in one transaction; rows already there are skipped."""
        db = self._db()
        try:
            before = db.total_changes
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO prediction_log VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (request_id, row, role) DO NOTHING",
                rows,
            )
            db.execute("COMMIT")
            return db.total_changes - before
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise DatabaseError(f"cannot write the prediction log {self.path}: {error}") from error

    def prune(self, before: float) -> int:
        """Delete rows older than `before` (unix time)."""
        try:
            return _prune(self._db(), before, "?")
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot prune the prediction log: {error}") from error

    def fetch(self, model: str, since: float, role: str = "live") -> list[StoredRow]:
        """Rows of a model since `since`, oldest first, with feedback labels."""
        decode = msgspec.json.decode
        try:
            cur = self._db().execute(
                "SELECT p.request_id, p.row, p.ts, p.version, p.role, p.input, p.output, "  # noqa: S608  (constant SQL fragments)
                f"coalesce(fs.label, fc.label) FROM prediction_log p {_FEEDBACK_OF_ROW} "
                "WHERE p.model = ? AND p.ts >= ? AND p.role = ? ORDER BY p.ts",
                (model, since, role),
            )
            return [
                StoredRow(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    decode(r[5]),
                    decode(r[6]),
                    None if r[7] is None else decode(r[7]),
                )
                for r in cur
            ]
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot read the prediction log: {error}") from error

    def labelled(self, model: str, since: float, limit: int) -> list[StoredRow]:
        """Live rows with a true label received since `since`, the `limit` most recent."""
        decode = msgspec.json.decode
        try:
            cur = self._db().execute(
                "SELECT p.request_id, p.row, p.ts, p.version, p.role, p.input, p.output, f.label "  # noqa: S608  (constant SQL fragments)
                f"FROM prediction_feedback f JOIN prediction_log p ON {_ROW_OF_FEEDBACK} "
                "WHERE f.model = ? AND f.received_at >= ? ORDER BY f.received_at DESC LIMIT ?",
                (model, since, limit),
            )
            return [
                StoredRow(r[0], r[1], r[2], r[3], r[4], decode(r[5]), decode(r[6]), decode(r[7]))
                for r in cur
            ]
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot read feedback: {error}") from error

    def add_feedback(self, model: str, items: Sequence[tuple[str, int, Any]]) -> int:
        """Attach true labels by (request id, row); a later label replaces an earlier one.

        The id may be the server's request id or the client's X-Request-ID (see _ROW_OF_FEEDBACK).
        """
        now = datetime.now(UTC).timestamp()
        enc = msgspec.json.encode
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO prediction_feedback VALUES (?,?,?,?,?) ON CONFLICT (request_id, row) "
                "DO UPDATE SET label = excluded.label, received_at = excluded.received_at",
                [(rid, row, model, enc(label).decode(), now) for rid, row, label in items],
            )
            db.execute("COMMIT")
            return len(items)
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise DatabaseError(f"cannot store feedback: {error}") from error

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_PG_DDL = """
CREATE TABLE IF NOT EXISTS prediction_log (
    request_id text NOT NULL, "row" integer NOT NULL, client_request_id text,
    ts timestamptz NOT NULL, model text NOT NULL, version integer NOT NULL, role text NOT NULL,
    input jsonb NOT NULL, output jsonb NOT NULL, latency_ms double precision NOT NULL,
    PRIMARY KEY (request_id, "row", role));
CREATE INDEX IF NOT EXISTS prediction_log_model_ts ON prediction_log (model, ts);
CREATE TABLE IF NOT EXISTS prediction_feedback (
    request_id text NOT NULL, "row" integer NOT NULL, model text NOT NULL, label jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (request_id, "row"));
CREATE INDEX IF NOT EXISTS prediction_feedback_model ON prediction_feedback (model, received_at);
CREATE TABLE IF NOT EXISTS prediction_log_schema (version integer NOT NULL);
"""


def _migrate_postgres(conn: Any) -> None:
    """Bring a table made by an older tabserve to SCHEMA_VERSION (inside the DDL transaction)."""
    index = conn.execute(
        "SELECT indpred IS NOT NULL FROM pg_index "
        "WHERE indexrelid = to_regclass('prediction_log_model_client')"
    ).fetchone()
    if index is None or not index[0]:
        # Building it over a long existing log may outlast statement_timeout; rows wait in
        # the spool meanwhile. lock_timeout still applies, so a locked table fails fast.
        conn.execute("SET LOCAL statement_timeout = 0")
        if index is not None:
            conn.execute("DROP INDEX prediction_log_model_client")  # v2: over every row
        conn.execute(CLIENT_INDEX)
    conn.execute(
        "UPDATE prediction_log_schema SET version = %s WHERE version < %s",
        (SCHEMA_VERSION, SCHEMA_VERSION),
    )


class PostgresSink:
    """PostgreSQL (TABSERVE_PREDICTION_LOG_URL): COPY into a temp table, then one idempotent INSERT."""

    def __init__(self, url: str, password: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url
        self.password = password
        self.timeout_s = timeout_s
        self._conn: Any = None

    def _db(self) -> Any:
        self.open()
        return self._conn

    def open(self) -> None:
        """Connect and create the tables (safe to run from several processes at once)."""
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return

        kwargs: dict[str, Any] = {"connect_timeout": max(1, int(self.timeout_s))}
        if self.password is not None:
            kwargs["password"] = self.password
        # A blocked or slow database must not hold the shipper forever: it retries instead.
        ms = int(self.timeout_s * 1000)
        kwargs["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
        conn = None
        try:
            conn = psycopg.connect(self.url, autocommit=True, **kwargs)
            with conn.transaction():
                # Serialise table creation between shippers and the monitor command.
                conn.execute("SELECT pg_advisory_xact_lock(727400501)")
                conn.execute(_PG_DDL)
                found = conn.execute("SELECT count(*) FROM prediction_log_schema").fetchone()
                if found is None or found[0] == 0:
                    conn.execute("INSERT INTO prediction_log_schema VALUES (%s)", (SCHEMA_VERSION,))
                _migrate_postgres(conn)
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS prediction_log_in "
                "(LIKE prediction_log INCLUDING DEFAULTS)"
            )
        except psycopg.Error as error:
            if conn is not None:
                conn.close()
            raise DatabaseError(
                f"cannot reach the prediction log database {_describe(self.url)}: "
                f"{str(error).strip()}; check TABSERVE_PREDICTION_LOG_URL and that it is up"
            ) from error
        self._conn = conn

    def _fail(self, what: str, error: Exception) -> DatabaseError:
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None
        return DatabaseError(f"{what} on {_describe(self.url)}: {str(error).strip()}")

    def write(self, rows: Sequence[LogRow]) -> int:
        """Insert rows in one transaction; rows already there are skipped."""
        import psycopg

        db = self._db()
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        try:
            with db.transaction():
                db.execute("TRUNCATE prediction_log_in")
                with db.cursor().copy(f"COPY prediction_log_in ({cols}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(
                            (
                                r.request_id,
                                r.row,
                                r.client_request_id,
                                datetime.fromtimestamp(r.ts, UTC),
                                r.model,
                                r.version,
                                r.role,
                                r.input,
                                r.output,
                                r.latency_ms,
                            )
                        )
                cur = db.execute(
                    f"INSERT INTO prediction_log ({cols}) SELECT {cols} FROM prediction_log_in "  # noqa: S608  (constant column list)
                    'ON CONFLICT (request_id, "row", role) DO NOTHING'
                )
                return int(cur.rowcount)
        except psycopg.Error as error:
            raise self._fail("cannot write the prediction log", error) from error

    def prune(self, before: float) -> int:
        """Delete rows older than `before` (unix time)."""
        import psycopg

        cutoff = datetime.fromtimestamp(before, UTC)
        try:
            return _prune(self._db(), cutoff, "%s")
        except psycopg.Error as error:
            raise self._fail("cannot prune the prediction log", error) from error

    def _stored_rows(self, sql: str, params: tuple[Any, ...], what: str) -> list[StoredRow]:
        import psycopg

        try:
            return [StoredRow(*r) for r in self._db().execute(sql, params)]
        except psycopg.Error as error:
            raise self._fail(f"cannot read {what}", error) from error

    def fetch(self, model: str, since: float, role: str = "live") -> list[StoredRow]:
        """Rows of a model since `since`, oldest first, with feedback labels."""
        return self._stored_rows(
            'SELECT p.request_id, p."row", extract(epoch from p.ts)::float8, p.version, '  # noqa: S608  (constant SQL fragments)
            "p.role, p.input, p.output, coalesce(fs.label, fc.label) FROM prediction_log p "
            f"{_FEEDBACK_OF_ROW} "
            "WHERE p.model = %s AND p.ts >= %s AND p.role = %s ORDER BY p.ts",
            (model, datetime.fromtimestamp(since, UTC), role),
            "the prediction log",
        )

    def labelled(self, model: str, since: float, limit: int) -> list[StoredRow]:
        """Live rows with a true label received since `since`, the `limit` most recent."""
        return self._stored_rows(
            'SELECT p.request_id, p."row", extract(epoch from p.ts)::float8, p.version, '  # noqa: S608  (constant SQL fragments)
            "p.role, p.input, p.output, f.label FROM prediction_feedback f "
            f"JOIN prediction_log p ON {_ROW_OF_FEEDBACK} "
            "WHERE f.model = %s AND f.received_at >= %s ORDER BY f.received_at DESC LIMIT %s",
            (model, datetime.fromtimestamp(since, UTC), limit),
            "feedback",
        )

    def add_feedback(self, model: str, items: Sequence[tuple[str, int, Any]]) -> int:
        """Attach true labels by (request id, row); a later label replaces an earlier one.

        The id may be the server's request id or the client's X-Request-ID (see _ROW_OF_FEEDBACK).
        """
        import psycopg
        from psycopg.types.json import Jsonb

        try:
            db = self._db()
            with db.transaction(), db.cursor() as cur:
                cur.executemany(
                    'INSERT INTO prediction_feedback (request_id, "row", model, label) '
                    'VALUES (%s, %s, %s, %s) ON CONFLICT (request_id, "row") '
                    "DO UPDATE SET label = excluded.label, received_at = now()",
                    [(rid, row, model, Jsonb(label)) for rid, row, label in items],
                )
            return len(items)
        except psycopg.Error as error:
            raise self._fail("cannot store feedback", error) from error

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _sqlite(url: str, settings: Settings) -> Sink:
    path = url.removeprefix("sqlite:///") if url else ""
    return SqliteSink(Path(path) if path else settings.home / "predictions.db")


def _postgres(url: str, settings: Settings) -> Sink:
    scheme, rest = url.split("://", 1)
    # SQLAlchemy-style "postgresql+psycopg://" names a driver; libpq wants the plain scheme.
    return PostgresSink(f"{scheme.split('+', 1)[0]}://{rest}", settings.database_password())


SINKS = {"sqlite": _sqlite, "postgresql": _postgres, "postgres": _postgres}


def sink_from_settings(settings: Settings) -> Sink:
    """The sink TABSERVE_PREDICTION_LOG_URL names (default: SQLite in TABSERVE_HOME)."""
    url = settings.prediction_log_url.get_secret_value() if settings.prediction_log_url else ""
    scheme = url.split(":", 1)[0].split("+", 1)[0] if url else "sqlite"
    factory = SINKS.get(scheme)
    if factory is None:
        raise UsageError(
            f"TABSERVE_PREDICTION_LOG_URL scheme {scheme!r} is not supported: "
            "use postgresql://... or leave it unset for SQLite in TABSERVE_HOME"
        )
    return factory(url, settings)
