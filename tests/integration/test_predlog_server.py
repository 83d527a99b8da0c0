"""The prediction log under the real server: every served row lands once, whatever happens.

`tabserve serve` with 2 workers and the shipper supervised by the server's master; requests over
every protocol (several rows for some); the log read back from SQLite or PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from tests.support.models import copy_home, register_iris
from tests.support.net import wait_until
from tests.support.postgres import Cluster
from tests.support.server import LECTURE, Server, metric, sqlite_rows

pytestmark = pytest.mark.slow

FLOWERS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]


@pytest.fixture(scope="module")
def iris_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with the lecture's Iris model, copied per test so each server has its own home."""
    folder = tmp_path_factory.mktemp("iris") / "home"
    register_iris(folder)
    return folder


def mixed_requests(
    client: httpx.Client, count: int, served: dict[str, int] | None = None
) -> dict[str, int]:
    """`count` requests over every protocol (some with several rows); {request id: rows} of 200s.

    Each 200 is added to `served` as soon as it arrives, so a caller that sees the connection
    fail midway still knows every answered request.
    """
    served = {} if served is None else served
    for i in range(count):
        rows = FLOWERS[: 1 + i % len(FLOWERS)]
        kind = i % 4
        if kind == 0:
            response = client.get(LECTURE)
            rows = rows[:1]
        elif kind == 1:
            response = client.post("/v1/models/iris:predict", json={"instances": rows})
        elif kind == 2:
            data = [v for r in rows for v in r]
            response = client.post(
                "/v2/models/iris/infer",
                json={
                    "inputs": [
                        {"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": data}
                    ]
                },
            )
        else:
            response = client.post("/invocations", json={"instances": rows})
        if response.status_code == 200:
            served[response.headers["x-request-id"]] = len(rows)
    return served


def expected_keys(served: dict[str, int]) -> set[tuple[str, int, str]]:
    """(request id, row, role) of every served row."""
    return {(rid, row, "live") for rid, n in served.items() for row in range(n)}


def as_keys(rows: Iterable[Any]) -> list[tuple[str, int, str]]:
    """Log rows as (request id, row, role) tuples, duplicates kept."""
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def postgres_keys(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return as_keys(conn.execute('SELECT request_id, "row", role FROM prediction_log'))


def test_two_servers_log_every_row_once_each_in_its_own_home(
    iris_home: Path, tmp_path: Path
) -> None:
    a = Server(copy_home(iris_home, tmp_path / "a"), tmp_path / "a.log", "iris")
    b = Server(copy_home(iris_home, tmp_path / "b"), tmp_path / "b.log", "iris")
    try:
        a.wait_ready()
        b.wait_ready()
        served_a = mixed_requests(a.client, 60)
        served_b = mixed_requests(b.client, 24)
        assert len(served_a) == 60 and len(served_b) == 24
        rows_a = sum(served_a.values())
        wait_until(lambda: len(sqlite_rows(a.home)) >= rows_a, 30, "server a's rows shipped")
        wait_until(
            lambda: len(sqlite_rows(b.home)) >= sum(served_b.values()), 30, "b's rows shipped"
        )
        logged_a = as_keys(sqlite_rows(a.home))
        assert sorted(logged_a) == sorted(expected_keys(served_a))  # no duplicate, none missing
        assert sorted(as_keys(sqlite_rows(b.home))) == sorted(expected_keys(served_b))
        # Each server's /metrics counts its own rows only (its own multiprocess folder).
        wait_until(
            lambda: metric(a.metrics(), "tabserve_prediction_log_rows_written_total") == rows_a,
            10,
            "written rows exported",
        )
        samples = a.metrics()
        assert metric(samples, "tabserve_prediction_log_rows_spooled_total") == rows_a
        assert metric(samples, "tabserve_prediction_log_rows_dropped_total") == 0
    finally:
        assert a.stop() == 0, a.output()
        assert b.stop() == 0, b.output()


def test_postgres_log_holds_one_row_per_served_row(
    iris_home: Path, tmp_path: Path, postgres_url: str
) -> None:
    server = Server(
        copy_home(iris_home, tmp_path / "home"),
        tmp_path / "serve.log",
        "iris",
        env={"TABSERVE_PREDICTION_LOG_URL": postgres_url},
    ).wait_ready()
    try:
        served = mixed_requests(server.client, 40)
        rows = sum(served.values())
        wait_until(lambda: len(postgres_keys(postgres_url)) >= rows, 30, "rows in Postgres")
        assert sorted(postgres_keys(postgres_url)) == sorted(expected_keys(served))
        assert not (server.home / "predictions.db").exists()  # nothing went to SQLite
    finally:
        assert server.stop() == 0, server.output()


def test_a_killed_shipper_is_restarted_by_the_master(iris_home: Path, tmp_path: Path) -> None:
    server = Server(
        copy_home(iris_home, tmp_path / "home"), tmp_path / "serve.log", "iris"
    ).wait_ready()
    try:
        wait_until(lambda: len(server.shipper_pids()) == 1, 30, "one shipper")
        victim = server.shipper_pids()[0]
        os.kill(victim, signal.SIGKILL)
        served = mixed_requests(server.client, 20)  # spooled while no shipper runs
        wait_until(
            lambda: len(server.shipper_pids()) == 1 and victim not in server.shipper_pids(),
            30,
            "a new shipper",
        )
        wait_until(
            lambda: len(sqlite_rows(server.home)) >= sum(served.values()), 30, "rows shipped"
        )
        assert sorted(as_keys(sqlite_rows(server.home))) == sorted(expected_keys(served))
        replacement = server.shipper_pids()[0]
    finally:
        assert server.stop() == 0, server.output()
    assert not psutil.pid_exists(replacement)  # stopped with the server, not orphaned


def load(server: Server, served: dict[str, int], stop: threading.Event, errors: list[str]) -> None:
    """Send requests until `stop`; record every 200 (the server may close the door meanwhile)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        deadline = time.monotonic() + 30  # bounded whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                mixed_requests(client, 4, served)
            except httpx.TransportError:
                return  # the server stopped accepting: the load ends
            except httpx.HTTPError as error:
                errors.append(repr(error))
                return


def test_sigterm_during_load_loses_no_answered_row(iris_home: Path, tmp_path: Path) -> None:
    server = Server(
        copy_home(iris_home, tmp_path / "home"), tmp_path / "serve.log", "iris"
    ).wait_ready()
    served: dict[str, int] = {}
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(server, served, stop, errors)) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(served) >= 100, 30, "load under way")
        assert server.terminate() == 0, server.output()
    finally:
        stop.set()
        for t in threads:
            t.join(40)
        server.stop()
    assert not errors
    # The master exits only after the workers flushed and the shipper drained the spool.
    logged = as_keys(sqlite_rows(server.home))
    assert len(logged) == len(set(logged))
    # Every answered row is there; a request answered as the connection closed may add more.
    assert expected_keys(served) <= set(logged)
    assert len(served) >= 100


def test_a_postgres_outage_delays_rows_but_loses_none(
    iris_home: Path, tmp_path: Path, throwaway_postgres: Cluster
) -> None:
    url = throwaway_postgres.url()
    server = Server(
        copy_home(iris_home, tmp_path / "home"),
        tmp_path / "serve.log",
        "iris",
        env={"TABSERVE_PREDICTION_LOG_URL": url},
    ).wait_ready()
    try:
        served = mixed_requests(server.client, 8)
        wait_until(lambda: len(postgres_keys(url)) >= sum(served.values()), 30, "first rows")
        throwaway_postgres.stop("immediate")
        slowest = 0.0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            started = time.monotonic()
            batch = mixed_requests(server.client, 4)
            slowest = max(slowest, time.monotonic() - started)
            assert len(batch) == 4  # every request still answers 200
            served.update(batch)
        assert slowest < 5, slowest  # liveness: the outage never sits on the request path
        assert list((server.home / "spool" / "predictions").glob("*.seg"))  # rows wait on disk
        throwaway_postgres.start()
        expected = expected_keys(served)
        wait_until(lambda: len(postgres_keys(url)) >= len(expected), 60, "spool drained")
        assert sorted(postgres_keys(url)) == sorted(expected)
        samples = server.metrics()
        assert metric(samples, "tabserve_prediction_log_ship_errors_total") > 0
        assert metric(samples, "tabserve_prediction_log_rows_dropped_total") == 0
    finally:
        assert server.stop() == 0, server.output()
