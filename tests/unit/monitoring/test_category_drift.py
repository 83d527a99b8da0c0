"""Drift of categorical features: a CSV model's category mix against its training counts."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from tabserve.cli import app
from tabserve.monitoring import drift
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import Shipper
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.training.train import TrainSpec, train
from tabserve.types import Manifest, Prediction

CITIES = ["paris", "rome", "oslo"]
WEIGHTS = [0.5, 0.3, 0.2]  # the training mix


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A model trained from a CSV with one category, city, whose training mix is WEIGHTS.

    Trained once for the module: the log and the shipper only need its manifest.
    """
    tmp_path = tmp_path_factory.mktemp("shop")
    rng = np.random.default_rng(11)
    lines = ["age,city,income,bought"]
    for i in range(300):
        income = int(rng.integers(10, 100))
        city = rng.choice(CITIES, p=WEIGHTS)
        lines.append(f"{20 + i % 50},{city},{income},{'yes' if income > 50 else 'no'}")
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as env:
        for key in [k for k in os.environ if k.startswith("TABSERVE_")]:
            env.delenv(key)
        settings = Settings.model_validate({"home": tmp_path / "home"})
        return train(TrainSpec(source=f"csv:{path}", target="bought"), settings).manifest


def live_rows(n: int, weights: list[float], seed: int) -> np.ndarray:
    """Rows as validation hands them to the log: dtype object, [age, city, income]."""
    rng = np.random.default_rng(seed)
    rows = np.empty((n, 3), dtype=object)
    rows[:, 0] = rng.integers(20, 70, n).astype(float)
    rows[:, 1] = rng.choice(CITIES, n, p=weights)
    rows[:, 2] = rng.integers(10, 100, n).astype(float)
    return rows


def serve(settings: Settings, manifest: Manifest, rows: np.ndarray, prefix: str) -> None:
    """Log `rows` as live predictions (10 per request) and ship them, as the server does."""

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        for i in range(0, len(rows), 10):
            chunk = rows[i : i + 10]
            pred = Prediction(np.array(["no"] * len(chunk), dtype=object), None)
            log.record(manifest, f"{prefix}{i}", None, chunk, pred, 0.001)
        await log.close()

    asyncio.run(main())


def gauge(model: str, feature: str) -> float:
    body = metrics.render()[0].decode()
    m = re.search(rf'tabserve_feature_drift_psi{{feature="{feature}",model="{model}"}} (\S+)', body)
    assert m is not None, body
    return float(m.group(1))


def test_training_counts_are_in_the_manifest(shop: Manifest) -> None:
    city = shop.features[1]
    assert city.kind == "category" and city.category_counts is not None
    assert sorted(city.category_counts) == ["oslo", "paris", "rome"]
    shares = {c: n / sum(city.category_counts.values()) for c, n in city.category_counts.items()}
    assert shares["paris"] > shares["rome"] > shares["oslo"]


def test_drift_gauge_low_for_the_training_mix_and_high_when_one_city_dominates(
    settings: Settings, shop: Manifest
) -> None:
    shipper = Shipper(settings)
    serve(settings, shop, live_rows(1000, WEIGHTS, seed=1), "mix")
    shipper.run_once()
    assert gauge("shop", "city") < 0.05
    shipper.drift = drift.DriftTracker(window_rows=1000)
    serve(settings, shop, live_rows(1000, [0.05, 0.05, 0.9], seed=2), "oslo")
    shipper.run_once()
    assert gauge("shop", "city") > drift.PSI_THRESHOLD


def test_report_flags_the_dominated_category_with_a_bar_chart(
    settings: Settings, shop: Manifest, tmp_path: Path
) -> None:
    serve(settings, shop, live_rows(600, [0.05, 0.05, 0.9], seed=3), "q")
    Shipper(settings).run_once()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["monitor", "shop", "--since", "1h", "--out", str(out)])
    assert result.exit_code == 0, result.output
    city = next(line for line in result.output.splitlines() if " city " in line)
    assert "FLAGGED" in city
    psi = float(city.split("│")[2])
    assert psi > drift.PSI_THRESHOLD
    html = out.read_text()
    assert re.search(r"<td>city</td><td>category</td>", html)
    assert 'alt="city" src="data:image/png;base64,' in html  # the live vs training bars


def test_unseen_values_fall_in_the_other_bucket_and_missing_is_skipped(shop: Manifest) -> None:
    city = shop.features[1]
    bins = drift.category_bins(city)
    assert bins is not None and bins.labels == ["oslo", "paris", "rome", drift.OTHER]
    counts = bins.counts(["paris", "lima", None, float("nan"), "paris", "quito"])
    assert counts.tolist() == [0, 2, 0, 2]
    assert bins.expected[-1] == 0  # finite PSI all the same, thanks to the epsilon floor
    assert np.isfinite(drift.feature_psi(["lima"] * 50, city))  # type: ignore[arg-type]
    assert drift.feature_psi(["lima"] * 50, city) > drift.PSI_THRESHOLD  # type: ignore[operator]


def test_a_manifest_without_category_counts_measures_numbers_only(
    settings: Settings, shop: Manifest
) -> None:
    # A manifest written before category counts existed: decoded without the field.
    raw = msgspec.json.decode(msgspec.json.encode(shop))
    for feature in raw["features"]:
        feature.pop("category_counts")
    old = msgspec.json.decode(msgspec.json.encode(raw), type=Manifest)
    assert old.features[1].category_counts is None
    assert drift.feature_psi(["paris"], old.features[1]) is None
    tracker = drift.DriftTracker()
    tracker.add(old, live_rows(50, WEIGHTS, seed=4).tolist())
    assert [name for name, _ in tracker.psi("shop")] == ["age", "income"]
