"""The spool's two forms (prepared rows, request records) and the older frames store the same log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest
from tests.unit.monitoring.conftest import make_manifest
from tests.unit.monitoring.test_drift import live

from tabserve.monitoring import records, spool
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import Shipper
from tabserve.settings import Settings
from tabserve.types import Feature, Manifest, Prediction

# Every column but ts, which is the time each form's record() ran.
COLUMNS = "request_id, row, client_request_id, model, version, role, input, output, latency_ms"


def stored(home: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "predictions.db") as db:
        return db.execute(
            f"SELECT {COLUMNS} FROM prediction_log ORDER BY request_id, row"  # noqa: S608
        ).fetchall()


def requests(manifest: Manifest, rows: np.ndarray) -> list[tuple[str, np.ndarray, Prediction]]:
    """Requests of 1, 3, and 100 rows (over PREPARED_ROWS), with odd floats and labels."""
    out = []
    start = 0
    for i, n in enumerate([1, 3, 100, 1]):
        chunk = rows[start : start + n]
        start += n
        labels = np.array(["a", "b"] * n, dtype=object)[:n]
        proba = np.tile([0.1 + 0.2, 1 - (0.1 + 0.2)], (n, 1))  # 0.30000000000000004
        out.append((f"req-{i}", chunk, Prediction(labels, proba)))
    return out


def log_and_ship(home: Path, manifest: Manifest, items: list[tuple[str, np.ndarray, Prediction]],
                 role: str = "live", hashed: bool = False) -> Shipper:  # fmt: skip
    settings = Settings.model_validate(
        {"home": home, "prediction_log_flush_ms": 10, "prediction_log_hash_features": hashed}
    )

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        for request_id, rows, prediction in items:
            log.record(manifest, request_id, f"c-{request_id}", rows, prediction, 0.0123, role)
        await log.close()

    asyncio.run(main())
    shipper = Shipper(settings)
    assert shipper.run_once() == sum(len(rows) for _, rows, _ in items)
    return shipper


@pytest.mark.parametrize("hashed", [False, True])
def test_prepared_rows_and_request_records_store_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashed: bool
) -> None:
    manifest = make_manifest()
    items = requests(manifest, np.array([[1 / 3, 7.7]] * 3 + [[-0.0, 1e-300]] * 102))
    log_and_ship(tmp_path / "prepared", manifest, items, hashed=hashed)
    monkeypatch.setattr(records, "PREPARED_ROWS", 0)  # every request as a request record
    log_and_ship(tmp_path / "records", manifest, items, hashed=hashed)
    prepared, exploded = stored(tmp_path / "prepared"), stored(tmp_path / "records")
    assert len(prepared) == 105
    assert prepared == exploded
    first = next(r for r in prepared if r[0] == "req-0")
    assert first[2:6] == ("c-req-0", "toy", 1, "live")
    if not hashed:
        assert first[6] == '{"x1":0.3333333333333333,"x2":7.7}'
    assert first[7] == '{"label":"a","proba":[0.30000000000000004,0.7]}'
    assert first[8] == pytest.approx(12.3)


def test_both_forms_feed_the_drift_window_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_manifest()
    rows = live(1.0, n=500)
    items = [
        (f"r{i}", rows[i : i + n], Prediction(np.array(["a"] * n), None))
        for i, n in zip(range(0, 500, 100), [1, 10, 64, 65, 100], strict=True)
    ]
    prepared = log_and_ship(tmp_path / "prepared", manifest, items).drift
    monkeypatch.setattr(records, "PREPARED_ROWS", 0)
    exploded = log_and_ship(tmp_path / "records", manifest, items).drift
    assert dict(prepared.psi("toy")) == pytest.approx(dict(exploded.psi("toy")))
    assert dict(prepared.psi("toy"))["x1"] > 0.1  # the shifted x1 shows


def shop() -> Manifest:
    """The toy manifest with a category feature between its two numbers."""
    toy = make_manifest("shop")
    city = Feature("city", "city", "category", "object", categories=["oslo", "rome"],
                   category_counts={"oslo": 30, "rome": 70})  # fmt: skip
    return msgspec.structs.replace(toy, features=[toy.features[0], city, toy.features[1]])


def test_category_rows_and_shadow_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = shop()
    rows = np.array([[1.0, "oslo", 2.0], [3.0, "lima", None]] * 10, dtype=object)
    items = [(f"s{i:02d}", rows[i : i + 1], Prediction(np.array(["no"], dtype=object), None))
             for i in range(20)]  # fmt: skip
    prepared = log_and_ship(tmp_path / "live", manifest, items)
    assert dict(prepared.drift.psi("shop"))["city"] > 0.2  # category rows reach the window
    assert stored(tmp_path / "live")[1][6] == '{"x1":3.0,"city":"lima","x2":null}'
    monkeypatch.setattr(records, "PREPARED_ROWS", 0)
    exploded = log_and_ship(tmp_path / "exploded", manifest, items)
    assert stored(tmp_path / "live") == stored(tmp_path / "exploded")
    assert prepared.drift.psi("shop") == exploded.drift.psi("shop")
    monkeypatch.undo()
    shadow = log_and_ship(tmp_path / "shadow", manifest, items, role="shadow")
    assert shadow.drift.psi("shop") == []  # shadow rows are logged, never measured
    assert [r[:6] for r in stored(tmp_path / "shadow")] == [
        (f"s{i:02d}", 0, f"c-s{i:02d}", "shop", 1, "shadow") for i in range(20)
    ]


def test_a_spool_of_the_older_form_still_ships(settings: Settings, manifest: Manifest) -> None:
    # Before prepared rows, a frame was a msgpack array of request records, no version byte.
    now = time.time()
    old = [
        records.RequestRecord("old-1", None, now, "toy", 1, "live", 0.002, [[1.5, 2.0]], ["b"],
                              [[0.25, 0.75]]),
        records.RequestRecord("old-2", "c", now, "toy", 1, "live", 0.004, [[3.0, 4.0]] * 2,
                              ["a", "b"], None),
    ]  # fmt: skip
    folder = spool.spool_dir(settings.home)
    records.save_manifest(folder, manifest)
    writer = spool.SpoolWriter(folder)
    writer.append(msgspec.msgpack.encode(old))
    writer.close_segment()
    shipper = Shipper(settings)
    assert shipper.run_once() == 3
    assert stored(settings.home) == [
        ("old-1", 0, None, "toy", 1, "live", '{"x1":1.5,"x2":2.0}',
         '{"label":"b","proba":[0.25,0.75]}', 2.0),
        ("old-2", 0, "c", "toy", 1, "live", '{"x1":3.0,"x2":4.0}', '{"label":"a"}', 4.0),
        ("old-2", 1, "c", "toy", 1, "live", '{"x1":3.0,"x2":4.0}', '{"label":"b"}', 4.0),
    ]  # fmt: skip
    assert shipper.drift.psi("toy")


def ship_frame(home: Path, manifest: Manifest, record: msgspec.Raw) -> Shipper:
    """Spool one frame holding one request record, and ship it."""
    folder = spool.spool_dir(home)
    records.save_manifest(folder, manifest)
    writer = spool.SpoolWriter(folder)
    writer.append(records.encode_frame([], [], [record]))
    writer.close_segment()
    shipper = Shipper(Settings.model_validate({"home": home}))
    shipper.run_once()
    return shipper


def test_request_records_carry_float64_as_bytes_and_lists_still_ship(tmp_path: Path) -> None:
    # A large numeric request spools its inputs and probabilities as float64 bytes; a record of
    # the form before (lists), still in a spool after an upgrade, stores the very same rows.
    manifest = make_manifest()
    rows = np.array([[1 / 3, -0.0], [1e-300, 7.7], [2.5, 1e300]])
    proba = np.array([[0.1 + 0.2, 0.7], [1.0, 0.0], [1 / 3, 2 / 3]])
    prediction = Prediction(np.array(["a", "b", "a"], dtype=object), proba)
    now = time.time()
    raw = records.request_record(manifest, "r", "c", now, "live", 0.01, rows, prediction, False)
    record = records.decode_frame(records.encode_frame([], [], [raw]))[2][0]
    assert isinstance(record.inputs, bytes) and isinstance(record.proba, bytes)
    as_lists = record._replace(inputs=rows.tolist(), proba=proba.tolist())
    from_bytes = ship_frame(tmp_path / "bytes", manifest, raw)
    from_lists = ship_frame(
        tmp_path / "lists", manifest, msgspec.Raw(msgspec.msgpack.encode(as_lists))
    )
    assert stored(tmp_path / "bytes") == stored(tmp_path / "lists") == [
        ("r", 0, "c", "toy", 1, "live", '{"x1":0.3333333333333333,"x2":-0.0}',
         '{"label":"a","proba":[0.30000000000000004,0.7]}', 10.0),
        ("r", 1, "c", "toy", 1, "live", '{"x1":1e-300,"x2":7.7}',
         '{"label":"b","proba":[1.0,0.0]}', 10.0),
        ("r", 2, "c", "toy", 1, "live", '{"x1":2.5,"x2":1e300}',
         '{"label":"a","proba":[0.3333333333333333,0.6666666666666666]}', 10.0),
    ]  # fmt: skip
    assert from_bytes.drift.psi("toy") == from_lists.drift.psi("toy") != []
