"""The worker side of the prediction log: every recorded row reaches the spool and the sink."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tabserve.errors import OverloadedError
from tabserve.monitoring import records, spool
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import Shipper
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction


def prediction(n: int) -> Prediction:
    return Prediction(np.array(["a", "b"] * n)[:n], np.tile([0.25, 0.75], (n, 1)))


async def record_requests(
    log: PredictionLog, manifest: Manifest, n: int, rows: int = 2, start: int = 0
) -> None:
    for i in range(start, start + n):
        x = np.full((rows, 2), float(i))
        result = log.record(manifest, f"req-{i}", f"client-{i}", x, prediction(rows), 0.001)
        if result is not None:
            await result


def spool_requests(settings: Settings, manifest: Manifest, n: int, rows: int) -> None:
    """A worker's log that records n requests and closes: one closed segment to ship."""

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        await record_requests(log, manifest, n, rows=rows)
        await log.close()

    asyncio.run(main())


def table(settings: Settings) -> list[tuple[object, ...]]:
    with sqlite3.connect(settings.home / "predictions.db") as db:
        return db.execute(
            "SELECT request_id, row, client_request_id, model, version, role, input, output "
            "FROM prediction_log ORDER BY request_id, row"
        ).fetchall()


def test_every_recorded_row_is_shipped_once(settings: Settings, manifest: Manifest) -> None:
    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        await record_requests(log, manifest, 50)
        await asyncio.sleep(0.05)  # at least one timed flush
        await record_requests(log, manifest, 50, start=50)
        await log.close()  # SIGTERM path: the rest of the buffer is flushed

    asyncio.run(main())
    assert Shipper(settings).run_once() == 200
    rows = table(settings)
    assert len(rows) == 200
    assert len({(r[0], r[1]) for r in rows}) == 200
    first = next(r for r in rows if r[0] == "req-3" and r[1] == 1)
    assert first[2:6] == ("client-3", "toy", 1, "live")
    assert first[6] == '{"x1":3.0,"x2":3.0}'
    assert first[7] == '{"label":"b","proba":[0.25,0.75]}'
    assert spool.closed_segments(spool.spool_dir(settings.home)) == []


def test_shipping_a_segment_twice_never_duplicates(settings: Settings, manifest: Manifest) -> None:
    spool_requests(settings, manifest, 10, rows=3)
    folder = spool.spool_dir(settings.home)
    (segment,) = spool.closed_segments(folder)
    copy = segment.with_name("copy.bin")
    shutil.copy(segment, copy)
    shipper = Shipper(settings)
    assert shipper.run_once() == 30
    copy.rename(segment)  # the shipper died after the commit but before the delete
    assert shipper.ship_segment(segment) == 0
    assert len(table(settings)) == 30


def rejected_frames_total() -> float:
    body = metrics.render()[0].decode()
    m = re.search(r"^tabserve_prediction_log_rejected_frames_total (\S+)$", body, re.M)
    assert m is not None, body
    return float(m.group(1))


def test_an_undecodable_frame_is_set_aside_and_the_rest_ships(
    settings: Settings, manifest: Manifest
) -> None:
    spool_requests(settings, manifest, 10, rows=3)
    folder = spool.spool_dir(settings.home)
    (served,) = spool.closed_segments(folder)
    good = list(spool.read_frames(served))
    # Checksums hold (a bug wrote them, not a crash): bytes msgpack never uses, and live
    # inputs of 3 floats for the toy model's 2 features.
    garbage = records.FRAME_V2 + b"\xc1"
    torn_rows = records.encode_frame([], [records.DriftRows("toy", 1, bytes(24))], [])
    segment = served.with_name(served.name.replace(".seg", "-mixed.seg"))
    segment.write_bytes(b"".join(spool.frame(p) for p in [garbage, torn_rows, *good]))
    served.unlink()
    before = rejected_frames_total()

    assert Shipper(settings).run_once() == 30  # every good frame after the bad ones
    assert len(table(settings)) == 30
    assert spool.closed_segments(folder) == []
    kept = folder / spool.REJECTED_DIR / segment.name
    assert list(spool.read_frames(kept)) == [garbage, torn_rows]
    assert rejected_frames_total() == before + 2


def test_sync_mode_answers_after_the_rows_are_in_the_spool(
    tabserve_home: Path, manifest: Manifest
) -> None:
    settings = Settings.model_validate(
        {"home": tabserve_home, "prediction_log_sync": True, "prediction_log_flush_ms": 10_000}
    )

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        waiter = log.record(manifest, "r1", None, np.zeros((1, 2)), prediction(1), 0.001)
        assert waiter is not None
        await asyncio.wait_for(waiter, 10)  # long before the 10 s flush interval
        folder = spool.spool_dir(settings.home)
        # The frame is on disk while the worker still runs: a kill -9 now would lose nothing.
        assert spool.spool_bytes(folder) > 0
        await log.close()

    asyncio.run(main())
    assert Shipper(settings).run_once() == 1


def test_hash_mode_stores_no_feature_values(tabserve_home: Path, manifest: Manifest) -> None:
    settings = Settings.model_validate(
        {"home": tabserve_home, "prediction_log_hash_features": True}
    )

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        log.record(manifest, "r1", None, np.array([[7.25, 1.5]]), prediction(1), 0.001)
        await log.close()

    asyncio.run(main())
    Shipper(settings).run_once()
    ((*_, inp, _out),) = table(settings)
    assert "7.25" not in str(inp)
    assert len(str(inp)) == len('{"sha256":""}') + 64


def test_full_spool_refuses_or_drops_never_raises_other(
    tabserve_home: Path, manifest: Manifest
) -> None:
    async def fill(on_full: str) -> PredictionLog:
        settings = Settings.model_validate(
            {"home": tabserve_home, "prediction_log_spool_max_bytes": 1024, "on_log_full": on_full}
        )
        log = PredictionLog(settings)
        await log.start()
        log.record(manifest, "big", None, np.zeros((200, 2)), prediction(200), 0.001)
        await log.flush()
        assert log.full
        return log

    async def main() -> None:
        refusing = await fill("refuse")
        with pytest.raises(OverloadedError) as info:
            refusing.record(manifest, "next", None, np.zeros((1, 2)), prediction(1), 0.001)
        assert info.value.status == 503
        await refusing.close()
        dropping = await fill("drop")
        assert (
            dropping.record(manifest, "next", None, np.zeros((1, 2)), prediction(1), 0.001) is None
        )
        await dropping.close()

    asyncio.run(main())
