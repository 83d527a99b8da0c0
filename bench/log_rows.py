"""What one logged row costs, worker and shipper, in each spool form, in this process.

    .venv/bin/python bench/log_rows.py [--rows 40000] [--rounds 5]

Trains the default Iris model into a temp TABSERVE_HOME. Then, round after round, it logs
`--rows` rows in each spool form (records.py) at the request size that form is used for:
one-row requests like the lecture's GET, spooled as prepared rows (the worker writes the table
rows: requests of up to records.PREPARED_ROWS rows), and 10,000-row requests like the bench's
V2 one, spooled as request records. For each it measures
- the worker: CPU time of the event-loop thread in `PredictionLog.record`, per row;
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
from tabserve.monitoring.predlog import PredictionLog  # noqa: E402
from tabserve.monitoring.shipper import Shipper  # noqa: E402
from tabserve.settings import Settings  # noqa: E402
from tabserve.types import Manifest, Prediction  # noqa: E402

FILL_ROWS = 300_000
FILL_CHUNK = 100_000
# Spool form -> rows per request.
FORMS = {"prepared rows": 1, "request records": 10_000}


async def _record(
    settings: Settings, manifest: Manifest, n: int, per_request: int, seed: int
) -> float:
    """Log n rows, per_request rows a request, through a worker's PredictionLog; loop CPU us
    per row."""
    rng = np.random.default_rng(seed)
    rows = np.round(rng.normal([5.8, 3.0, 3.7, 1.2], 0.4, size=(n, 4)), 1)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    labels = np.array(["0", "1", "2"])[proba.argmax(axis=1)]
    prefix = os.urandom(6).hex()
    log = PredictionLog(settings)
    await log.start()
    start = time.thread_time()
    for i, first in enumerate(range(0, n, per_request)):
        part = slice(first, first + per_request)
        prediction = Prediction(labels[part], proba[part])
        log.record(manifest, f"{prefix}{i:08x}", None, rows[part], prediction, 3e-4)
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
            asyncio.run(_record(settings, manifest, FILL_CHUNK, 1, seed=100 + seed))
        shipper.run_once()
        figures: dict[str, list[tuple[float, float]]] = {form: [] for form in FORMS}
        for round_ in range(args.rounds):
            for form, per_request in FORMS.items():
                worker = asyncio.run(
                    _record(settings, manifest, args.rows, per_request, seed=1 + round_)
                )
                figures[form].append((worker, _ship(shipper, args.rows)))
        shipper.close()
    print(f"{args.rows:,} rows a round and form, median of {args.rounds} rounds, CPU us")
    print("| spool form | rows per request | worker us/row | shipper us/row | total us/row |")
    print("|---|---:|---:|---:|---:|")
    for form, points in figures.items():
        worker = statistics.median(p[0] for p in points)
        ship = statistics.median(p[1] for p in points)
        print(f"| {form} | {FORMS[form]:,} | {worker:.2f} | {ship:.2f} | {worker + ship:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
