"""`tabserve monitor NAME` and `tabserve monitor feedback`: drift flagged, accuracy from feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tabserve.cli import app
from tabserve.monitoring.predlog import PredictionLog
from tabserve.monitoring.shipper import Shipper
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction


def serve(settings: Settings, manifest: Manifest, shift: float, n: int = 1000) -> None:
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.normal(5.0 + shift, 1.0, n), rng.uniform(0.0, 10.0, n)])

    async def main() -> None:
        log = PredictionLog(settings)
        await log.start()
        for i in range(0, n, 10):
            labels = np.array(["a" if j % 2 else "b" for j in range(10)])
            log.record(manifest, f"q{i}", None, rows[i : i + 10], Prediction(labels, None), 0.001)
        await log.close()

    asyncio.run(main())
    Shipper(settings).run_once()


def test_report_flags_the_shifted_feature_and_shows_accuracy(
    settings: Settings, manifest: Manifest, tmp_path: Path
) -> None:
    serve(settings, manifest, shift=1.5)
    labels = tmp_path / "labels.csv"
    # Rows 0..9 of q0 and q10: predicted b,a,b,a,...; the truth is "a" everywhere -> 50%.
    labels.write_text(
        "request_id,row,label\n" + "".join(f"q{r},{j},a\n" for r in (0, 10) for j in range(10))
    )
    runner = CliRunner()
    fed = runner.invoke(app, ["monitor", "feedback", "toy", str(labels)])
    assert fed.exit_code == 0, fed.output
    assert "20 labels" in fed.output
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["monitor", "toy", "--since", "1h", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    x1 = next(line for line in lines if " x1 " in line)
    x2 = next(line for line in lines if " x2 " in line)
    assert "FLAGGED" in x1 and "FLAGGED" not in x2
    assert "1000 live rows" in result.output
    assert "accuracy 50.00%" in result.output
    html = out.read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html  # self-contained


def test_default_report_path_is_under_home(settings: Settings, manifest: Manifest) -> None:
    serve(settings, manifest, shift=0.0, n=100)
    result = CliRunner().invoke(app, ["monitor", "toy"])
    assert result.exit_code == 0, result.output
    (report,) = (settings.home / "reports").glob("toy-*.html")
    assert "No feature over its threshold" in report.read_text()


def test_bad_since_is_a_usage_error(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["monitor", "toy", "--since", "yesterday"])
    assert result.exit_code == 2
