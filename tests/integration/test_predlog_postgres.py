"""The prediction log on real PostgreSQL: exactly one row per record, through an outage too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
from tests.support.net import wait_until
from tests.support.postgres import Cluster
from tests.unit.monitoring.conftest import log_row, make_manifest

from tabserve.monitoring import spool
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import ShipperThread
from tabserve.settings import Settings
from tabserve.types import Prediction

pytestmark = pytest.mark.postgres


def settings_for(home: Path, url: str) -> Settings:
    return Settings.model_validate(
        {
            "home": home,
            "prediction_log_url": url,
            "prediction_log_flush_ms": 20,
            "graceful_timeout": 20,
        }
    )


def counts(url: str) -> tuple[int, int]:
    """Rows in the log, and distinct (request_id, row) keys."""
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(
            'SELECT count(*), count(DISTINCT (request_id, "row")) FROM prediction_log'
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def count_or_zero(url: str) -> int:
    try:
        return counts(url)[0]
    except psycopg.Error:
        return -1


async def async_wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    """wait_until for code inside the event loop: the loop keeps flushing meanwhile."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not true after {timeout:.0f}s")
        await asyncio.sleep(0.05)


PRED = Prediction(np.array([1]), np.array([[0.1, 0.9]]))


def test_n_records_become_exactly_n_rows(postgres_url: str, tabserve_home: Path) -> None:
    settings = settings_for(tabserve_home, postgres_url)
    manifest = make_manifest()
    shipper = ShipperThread(settings).start()

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        for i in range(300):
            log.record(manifest, f"r{i}", f"c{i}", np.array([[5.0, float(i % 10)]]), PRED, 0.0005)
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await log.close()

    try:
        asyncio.run(main())
        wait_until(lambda: count_or_zero(postgres_url) == 300, 30, "300 rows in Postgres")
    finally:
        shipper.stop()
    assert counts(postgres_url) == (300, 300)
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT client_request_id, role, input->>'x2', output->>'label' FROM prediction_log "
            "WHERE request_id = 'r7'"
        ).fetchone()
    assert row == ("c7", "live", "7.0", "1")


def test_outage_spools_and_drains_without_loss(
    throwaway_postgres: Cluster, tabserve_home: Path
) -> None:
    url = throwaway_postgres.url()
    settings = settings_for(tabserve_home, url)
    manifest = make_manifest()
    folder = spool.spool_dir(tabserve_home)
    shipper = ShipperThread(settings).start()
    sent = 0
    slowest = 0.0

    async def serve_for(seconds: float) -> None:
        nonlocal sent, slowest
        end = time.monotonic() + seconds
        while time.monotonic() < end and sent < 20_000:
            t0 = time.perf_counter()
            log.record(manifest, f"q{sent}", None, np.array([[5.0, 1.0]]), PRED, 0.0005)
            slowest = max(slowest, time.perf_counter() - t0)
            sent += 1
            await asyncio.sleep(0.001)

    async def main() -> None:
        await log.start()
        await serve_for(1.0)
        await async_wait(lambda: count_or_zero(url) > 0, 30, "first rows shipped")
        throwaway_postgres.stop("immediate")
        before = sent
        await serve_for(3.0)
        assert sent - before > 100  # records kept being accepted while the database was down
        await asyncio.sleep(1.5)  # segments rotate (1 s) and wait in the spool
        assert spool.spool_bytes(folder) > 0
        assert len(spool.closed_segments(folder)) >= 1
        throwaway_postgres.start()
        await serve_for(1.0)
        await log.close()

    log = PredictionLog(settings)
    try:
        asyncio.run(main())
        print(f"records sent: {sent}, slowest record(): {slowest * 1e3:.2f} ms")
        wait_until(lambda: count_or_zero(url) == sent, 60, f"{sent} rows after the outage")
        wait_until(lambda: not spool.closed_segments(folder), 30, "spool drained")
    finally:
        shipper.stop()
    assert counts(url) == (sent, sent)
    assert slowest < 0.5  # a liveness bound: record() never waits on the database


def test_retention_prunes_every_models_old_rows_and_keeps_the_rest(postgres_url: str) -> None:
    from tabserve.monitoring.sinks import PostgresSink

    day = 86400.0
    now = time.time()

    sink = PostgresSink(postgres_url)
    sink.open()
    try:
        rows = [
            log_row(f"old-{m}-{i}", m, now - 40 * day) for m in ("iris", "wine") for i in range(5)
        ]
        rows += [log_row(f"new-{m}-{i}", m, now - day) for m in ("iris", "wine") for i in range(3)]
        assert sink.write(rows) == 16
        with psycopg.connect(postgres_url) as conn:
            conn.execute(
                'INSERT INTO prediction_feedback (request_id, "row", model, label, received_at) '
                "VALUES ('old-iris-0', 0, 'iris', '1', now() - interval '40 days'), "
                "('new-wine-0', 0, 'wine', '1', now() - interval '1 day')"
            )
        assert sink.prune(now - 30 * day) == 10
        with psycopg.connect(postgres_url) as conn:
            kept = sorted(r[0] for r in conn.execute("SELECT request_id FROM prediction_log"))
            feedback = [r[0] for r in conn.execute("SELECT request_id FROM prediction_feedback")]
        assert kept == sorted(f"new-{m}-{i}" for m in ("iris", "wine") for i in range(3))
        assert feedback == ["new-wine-0"]
    finally:
        sink.close()
