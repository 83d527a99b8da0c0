"""Real PostgreSQL for tests: the shared server when it is there, else a cluster of our own.

Tests that stop, block or password-protect a server get a throwaway cluster (`initdb` +
`pg_ctl` on a free loopback port) so the shared server is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.net import free_port

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432


def bin_dir() -> Path:
    """The folder holding initdb/pg_ctl, or an error that says how to install them."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: run `bash tests/setup-system.sh`")


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # The server refuses to run as root; Debian's package creates the `postgres` user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@dataclass
class Cluster:
    """A PostgreSQL cluster of the test's own, on a free loopback port."""

    port: int
    datadir: Path
    superuser: str = "postgres"
    password: str | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.datadir.parent / "server.log"

    def url(
        self, db: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        user = user or self.superuser
        password = password if password is not None else self.password
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def _ctl(self, *args: str) -> None:
        cmd = [str(bin_dir() / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log), *args]
        subprocess.run(_as_postgres_user(cmd), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.datadir.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-w", "-t", "30", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-w", "-t", "30", "-m", mode, "stop")

    def is_running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()


def start_cluster(*, password: str | None = None) -> Cluster:
    """initdb + start a cluster; with a password, every login uses scram-sha-256."""
    root = Path(tempfile.mkdtemp(prefix="tabserve-pg-"))
    datadir = root / "data"
    pwfile = root / "pw"
    cmd = [str(bin_dir() / "initdb"), "-D", str(datadir), "-U", "postgres", "--no-sync"]
    if password:
        pwfile.write_text(password)
        cmd += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        cmd += ["--auth=trust"]
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        if password:
            shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(_as_postgres_user(cmd), check=True, capture_output=True, timeout=120)
    pwfile.unlink(missing_ok=True)
    cluster = Cluster(port=free_port(), datadir=datadir, password=password)
    cluster.start()
    return cluster


@contextlib.contextmanager
def throwaway_cluster(*, password: str | None = None) -> Iterator[Cluster]:
    """A cluster stopped and removed at the end, whatever happens."""
    cluster = start_cluster(password=password)
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(cluster.datadir.parent, ignore_errors=True)


def shared_or_own_server() -> tuple[str, Cluster | None]:
    """Admin URL of the shared server on 127.0.0.1:5432, or of a cluster started for the run."""
    shared = f"postgresql://postgres@{SHARED_HOST}:{SHARED_PORT}/postgres"
    if can_connect(shared):
        return shared, None
    cluster = start_cluster()
    return cluster.url(), cluster


def create_database(admin_url: str) -> str:
    """A new empty database on the server behind admin_url; returns its URL."""
    name = f"tabserve_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 10
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while True:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
