"""What one logged row costs, worker and shipper, in each spool form, in this process.

    .venv/bin/python bench/log_rows.py [--rows 40000] [--rounds 5]

Trains the default Iris model into a temp TABSERVE_HOME. Then, round after round, for
one-row requests like the lecture's GET spooled in each form (records.py): as prepared rows
(the worker writes the table rows: requests of up to records.PREPARED_ROWS rows) and as
request records (the form of larger requests and of older spools, forced here by setting
PREPARED_ROWS to 0), it measures
- the worker: CPU time of the event-loop thread in `PredictionLog.record`, per request;
- the shipper: CPU time of `Shipper.run_once` per row (read, decode, rows, drift window,
  SQLite insert) into a log that already holds 300,000 rows, as a long-running server's does.
Prints one table with the median round of each form.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(_ROOT)

import msgspec  # noqa: E402
import numpy as np  # noqa: E402

from bench import stacks  # noqa: E402
from tabserve.monitoring import records  # noqa: E402
from tabserve.monitoring.predlog import PredictionLog  # noqa: E402
from tabserve.monitoring.shipper import Shipper  # noqa: E402
from tabserve.settings import Settings  # noqa: E402
from tabserve.types import Manifest, Prediction  # noqa: E402

FILL_ROWS = 300_000
FILL_CHUNK = 100_000
FORMS = {"prepared rows": records.PREPARED_ROWS, "request records": 0}


async def _record(settings: Settings, manifest: Manifest, n: int, seed: int) -> float:
    """Log n one-row requests through a worker's PredictionLog; loop CPU us per request."""
    rng = np.random.default_rng(seed)
    rows = np.round(rng.normal([5.8, 3.0, 3.7, 1.2], 0.4, size=(n, 4)), 1)
    prediction = Prediction(np.array(["2"]), np.array([[0.001, 0.002, 0.997]]))
    prefix = os.urandom(6).hex()
    log = PredictionLog(settings)
    await log.start()
    start = time.thread_time()
    for i in range(n):
        log.record(manifest, f"{prefix}{i:08x}", None, rows[i : i + 1], prediction, 3e-4)
    elapsed = time.thread_time() - start
    await log.close()  # one flush at the end: the loop never yielded to the timed one
    return elapsed / n * 1e6


def _ship(shipper: Shipper, n: int) -> float:
    start = time.process_time()
    shipped = shipper.run_once()
    elapsed = time.process_time() - start
    if shipped != n:
        raise RuntimeError(f"shipped {shipped} rows, expected {n}")
    return elapsed / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000, help="requests per round and form")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tabserve-logrows-") as tmp:
        home = Path(tmp) / "home"
        stacks.train_tabserve(stacks.default_tabserve(), home, Path(tmp) / "logs")
        (path,) = home.rglob("manifest.json")
        manifest = msgspec.json.decode(path.read_bytes(), type=Manifest)
        os.environ["TABSERVE_HOME"] = str(home)
        settings = Settings.model_validate({"prediction_log_flush_ms": 600_000})
        shipper = Shipper(settings)
        for seed in range(FILL_ROWS // FILL_CHUNK):  # a worker's buffer holds up to 200,000 rows
            asyncio.run(_record(settings, manifest, FILL_CHUNK, seed=100 + seed))
        shipper.run_once()
        figures: dict[str, list[tuple[float, float]]] = {form: [] for form in FORMS}
        for round_ in range(args.rounds):
            for form, prepared in FORMS.items():
                records.PREPARED_ROWS = prepared
                worker = asyncio.run(_record(settings, manifest, args.rows, seed=1 + round_))
                figures[form].append((worker, _ship(shipper, args.rows)))
        records.PREPARED_ROWS = FORMS["prepared rows"]
        shipper.close()
    print(f"one-row requests, {args.rows:,} a round, median of {args.rounds} rounds, CPU us")
    print("| spool form | worker us/request | shipper us/row | total us |")
    print("|---|---:|---:|---:|")
    for form, points in figures.items():
        worker = statistics.median(p[0] for p in points)
        ship = statistics.median(p[1] for p in points)
        print(f"| {form} | {worker:.2f} | {ship:.2f} | {worker + ship:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
