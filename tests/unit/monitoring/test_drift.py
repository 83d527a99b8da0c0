"""Drift: shifted live data crosses the PSI threshold, training-like data does not."""

from __future__ import annotations

import asyncio
import re

import numpy as np
from tests.unit.monitoring.conftest import training_sample

from tabserve.monitoring import drift
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import Shipper
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction


def live(shift: float, n: int = 2000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(5.0 + shift, 1.0, n), rng.uniform(0.0, 10.0, n)])


def test_psi_flags_shifted_data_only(manifest: Manifest) -> None:
    x1 = manifest.features[0]
    assert drift.feature_psi(live(0.0)[:, 0], x1) < 0.1  # type: ignore[operator]
    assert drift.feature_psi(live(1.0)[:, 0], x1) > drift.PSI_THRESHOLD  # type: ignore[operator]


def test_ks_rejects_shifted_data_only(manifest: Manifest) -> None:
    hist = manifest.features[0].histogram
    assert hist is not None
    assert drift.ks_test(live(0.0)[:, 0], hist)[1] > 0.01
    stat, p = drift.ks_test(live(0.7)[:, 0], hist)
    assert p < 1e-6 and stat > 0.2


def test_out_of_range_values_land_in_end_bins(manifest: Manifest) -> None:
    hist = manifest.features[1].histogram
    assert hist is not None
    counts = drift.bin_counts(np.array([-100.0, np.nan, 100.0, 5.0]), hist)
    assert counts.sum() == 3 and counts[0] == 1 and counts[-1] == 1
    assert training_sample().shape == (5000, 2)


def gauge(model: str, feature: str) -> float:
    body = metrics.render()[0].decode()
    m = re.search(rf'tabserve_feature_drift_psi{{feature="{feature}",model="{model}"}} (\S+)', body)
    assert m is not None, body
    return float(m.group(1))


def test_shipper_sets_the_drift_gauge(settings: Settings, manifest: Manifest) -> None:
    async def serve(rows: np.ndarray, prefix: str) -> None:
        log = PredictionLog(settings)
        await log.start()
        for i in range(0, len(rows), 10):
            chunk = rows[i : i + 10]
            pred = Prediction(np.array(["a"] * len(chunk)), None)
            log.record(manifest, f"{prefix}{i}", None, chunk, pred, 0.001)
        await log.close()

    shipper = Shipper(settings)
    asyncio.run(serve(live(0.0), "same"))
    shipper.run_once()
    assert gauge("toy", "x1") < 0.1
    shipper.drift = drift.DriftTracker(window_rows=1000)
    asyncio.run(serve(live(1.5, seed=2), "shifted"))
    shipper.run_once()
    assert gauge("toy", "x1") > drift.PSI_THRESHOLD
    assert gauge("toy", "x2") < 0.1
