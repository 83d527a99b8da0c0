"""Reading training data: Iris, CSV files and the checks on a Postgres URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabserve.errors import DataSourceError, UsageError
from tabserve.settings import Settings
from tabserve.training.sources import database_url, load_source


def _load(spec: str, table: str | None = None, target: str | None = None):  # type: ignore[no-untyped-def]
    return load_source(spec, table=table, target=target, settings=Settings())


def test_iris_has_the_lecture_data_under_client_names() -> None:
    data = _load("iris")
    assert list(data.X.columns) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert data.X.shape == (150, 4)
    assert data.y.name == "target" and sorted(data.y.unique()) == [0, 1, 2]
    assert data.y.dtype == "int64"
    assert (data.name, data.description) == ("iris", "iris")


def test_csv_keeps_numbers_categories_and_missing_values(shop_csv: Path) -> None:
    data = _load(f"csv:{shop_csv}", target="bought")
    assert list(data.X.columns) == ["age", "city", "income"]
    assert data.X["age"].isna().sum() == 10 and data.X["city"].isna().sum() == 9
    assert set(data.y) == {"yes", "no"}
    assert (data.name, data.description) == ("shop", "csv:shop.csv")


def test_csv_rows_without_a_target_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,a\n2,\n3,b\n")
    data = _load(f"csv:{path}", target="y")
    assert list(data.X["x"]) == [1, 3]


@pytest.mark.parametrize(
    ("content", "target", "error", "says"),
    [
        (None, "y", DataSourceError, "does not exist"),
        ("", "y", DataSourceError, "is empty"),
        ("x,y\n", "y", DataSourceError, "no rows"),
        ("x,y\n1,2\n", "z", DataSourceError, "target column 'z' is not in"),
        ("x,y\n1,2\n", None, UsageError, "--target"),
        ("y\n1\n2\n", "y", DataSourceError, "no feature columns"),
        ("x,y\n1,\n", "y", DataSourceError, "no rows with a value"),
    ],
)
def test_bad_csv_says_what_to_do(
    tmp_path: Path, content: str | None, target: str | None, error: type, says: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=says):
        _load(f"csv:{path}", target=target)


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(DataSourceError, match="use iris, csv:PATH or postgresql://"):
        _load("mnist")


def test_table_is_refused_outside_postgres() -> None:
    with pytest.raises(UsageError, match="--table is only for a postgresql"):
        _load("iris", table="iris")


def test_password_in_the_url_is_refused_and_not_repeated() -> None:
    with pytest.raises(UsageError, match="TABSERVE_DB_PASSWORD") as caught:
        _load("postgresql://trainer:hunter2@127.0.0.1:5432/db", table="iris", target="target")
    assert "hunter2" not in str(caught.value)


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABSERVE_DB_PASSWORD", "from-env")
    url = database_url("postgresql://trainer@db.example:5433/ml", Settings())
    assert (url.drivername, url.username, url.password) == (
        "postgresql+psycopg",
        "trainer",
        "from-env",
    )
    assert "from-env" not in str(url)  # SQLAlchemy masks it when rendered


def test_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.setenv("TABSERVE_DB_PASSWORD_FILE", str(secret))
    assert database_url("postgresql://u@h/db", Settings()).password == "from-file"
    monkeypatch.setenv("TABSERVE_DB_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="can't be read"):
        database_url("postgresql://u@h/db", Settings())


def test_postgres_source_needs_a_table() -> None:
    with pytest.raises(UsageError, match="--table"):
        _load("postgresql://u@127.0.0.1:5432/db", target="target")
