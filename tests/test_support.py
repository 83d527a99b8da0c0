"""The test harness itself: a throwaway cluster really requires its password; the image test
tells another Docker engine's packages from a machine where it may install docker.io."""

import psycopg
import pytest

from tests.support.docker import installed_packages
from tests.support.postgres import Cluster


def test_password_cluster_refuses_a_wrong_password(password_postgres: Cluster) -> None:
    with psycopg.connect(password_postgres.url(), connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(password_postgres.url(password="wrong"), connect_timeout=5)


def test_fresh_database_is_empty(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()
    assert rows == (0,)


def test_installed_packages_lists_only_installed_ones() -> None:
    # dpkg itself is installed on every Debian machine; the other name exists nowhere.
    assert installed_packages(("dpkg", "tabserve-no-such-package")) == ["dpkg"]
