"""Fixtures every test may use. Each test gets its own TABSERVE_HOME; Postgres is the real one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres


@pytest.fixture(autouse=True)
def tabserve_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TABSERVE_HOME for each test; the user's ./.tabserve is never touched."""
    for key in list(os.environ):
        if key.startswith("TABSERVE_"):
            monkeypatch.delenv(key)
    home = tmp_path / "tabserve-home"
    monkeypatch.setenv("TABSERVE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """Superuser URL of a real server: the shared one on 127.0.0.1:5432, else our own cluster."""
    url, own = postgres.shared_or_own_server()
    try:
        yield url
    finally:
        if own is not None:
            own.stop("immediate")


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh empty database for one test, dropped afterwards."""
    url = postgres.create_database(postgres_admin_url)
    try:
        yield url
    finally:
        postgres.drop_database(postgres_admin_url, url)


@pytest.fixture
def throwaway_postgres() -> Iterator[postgres.Cluster]:
    """A cluster of the test's own (trust auth) that it may stop, block or kill."""
    with postgres.throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def password_postgres() -> Iterator[postgres.Cluster]:
    """A cluster of the test's own where every login needs a password (scram-sha-256)."""
    with postgres.throwaway_cluster(password="s3cret-admin") as cluster:
        yield cluster
