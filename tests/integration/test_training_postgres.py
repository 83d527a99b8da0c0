"""Training from Postgres as the lecture's next step: load Iris, train as a read-only role.

The shared server trusts every local login, so anything about passwords runs against a
cluster of the test's own that asks for scram-sha-256 passwords (`password_postgres`).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from tests.support.net import free_port
from tests.support.postgres import Cluster
from typer.testing import CliRunner

from tabserve.artifacts import store
from tabserve.cli import app

pytestmark = pytest.mark.postgres

ADMIN_PASSWORD = "s3cret-admin"  # the password_postgres fixture's superuser password
TRAINER_PASSWORD = "tr41ner-pw-xyz"


def _run(args: list[str], password: str | None, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if password is None:
        monkeypatch.delenv("TABSERVE_DB_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("TABSERVE_DB_PASSWORD", password)
    return CliRunner().invoke(app, args)


def _no_password(url: str) -> str:
    """postgresql://user@host:port/db from a URL that may hold a password."""
    scheme, rest = url.split("://", 1)
    auth, location = rest.split("@", 1)
    return f"{scheme}://{auth.split(':', 1)[0]}@{location}"


def test_load_iris_and_train_from_the_table(
    postgres_url: str, tabserve_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):  # a second load replaces the table rather than doubling it
        loaded = _run(["data", "load-iris", "--db", postgres_url], None, monkeypatch)
        assert loaded.exit_code == 0, loaded.output
    with psycopg.connect(postgres_url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'iris' ORDER BY ordinal_position"
            )
        ]
        count = conn.execute("SELECT count(*) FROM iris").fetchone()
    assert columns == ["sepal_length", "sepal_width", "petal_length", "petal_width", "target"]
    assert count == (150,)

    args = ["train", "--source", postgres_url, "--table", "iris", "--target", "target"]
    trained = _run(args, None, monkeypatch)
    assert trained.exit_code == 0, trained.output
    manifest = store.verify(tabserve_home / "models" / "iris" / "1")
    assert round(manifest.metrics["accuracy"], 3) == 0.933
    assert manifest.source.endswith("table iris")


def test_train_as_a_read_only_role(
    password_postgres: Cluster, tabserve_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = _no_password(password_postgres.url())
    loaded = _run(
        ["data", "load-iris", "--db", admin, "--table", "flowers"], ADMIN_PASSWORD, monkeypatch
    )
    assert loaded.exit_code == 0, loaded.output
    with psycopg.connect(password_postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE trainer LOGIN PASSWORD '{TRAINER_PASSWORD}'")
        conn.execute("GRANT SELECT ON flowers TO trainer")
    trainer = _no_password(password_postgres.url(user="trainer", password=TRAINER_PASSWORD))

    args = ["train", "--source", trainer, "--table", "flowers", "--target", "target"]
    trained = _run(args, TRAINER_PASSWORD, monkeypatch)
    assert trained.exit_code == 0, trained.output
    assert TRAINER_PASSWORD not in trained.output
    manifest = store.verify(tabserve_home / "models" / "flowers" / "1")
    assert manifest.task == "classification" and manifest.classes == [0, 1, 2]
    assert round(manifest.metrics["accuracy"], 3) == 0.933
    assert (
        TRAINER_PASSWORD
        not in (tabserve_home / "models" / "flowers" / "1" / "manifest.json").read_text()
    )

    # The role reads and nothing else.
    as_trainer = password_postgres.url(user="trainer", password=TRAINER_PASSWORD)
    with psycopg.connect(as_trainer) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO flowers VALUES (1, 1, 1, 1, 0)")
    reload = _run(
        ["data", "load-iris", "--db", trainer, "--table", "flowers"], TRAINER_PASSWORD, monkeypatch
    )
    assert reload.exit_code == 2
    assert "lacks the privilege" in reload.stderr and TRAINER_PASSWORD not in reload.output


def test_wrong_password_is_a_clear_error_without_the_password(
    password_postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _no_password(password_postgres.url())
    args = ["train", "--source", source, "--table", "iris", "--target", "target"]
    result = _run(args, "not-the-password-123", monkeypatch)
    assert result.exit_code == 2
    assert "wrong or missing password" in result.stderr
    assert "TABSERVE_DB_PASSWORD" in result.stderr
    assert "not-the-password-123" not in result.output and "Traceback" not in result.output
    missing = _run(args, None, monkeypatch)
    assert missing.exit_code == 2 and "wrong or missing password" in missing.stderr


def test_missing_table_names_the_table(
    password_postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _no_password(password_postgres.url())
    args = ["train", "--source", source, "--table", "nope", "--target", "target"]
    result = _run(args, ADMIN_PASSWORD, monkeypatch)
    assert result.exit_code == 2
    assert "table 'nope' does not exist" in result.stderr and ADMIN_PASSWORD not in result.output


def test_unreachable_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    source = f"postgresql://trainer@127.0.0.1:{free_port()}/ml"
    args = ["train", "--source", source, "--table", "iris", "--target", "target"]
    result = _run(args, TRAINER_PASSWORD, monkeypatch)
    assert result.exit_code == 2
    assert "can't reach the database at postgresql://trainer@127.0.0.1" in result.stderr
    assert TRAINER_PASSWORD not in result.output and "Traceback" not in result.output
