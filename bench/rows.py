"""Throughput on one large request: a 10,000-row V2 infer call vs the in-process runtime.

The same rows go to `POST /v2/models/iris/infer` (one FP64 tensor `input` [N, 4], the client's
default outputs) and to `load_runtime(path, manifest).predict(rows)` in this process; both are
timed over repeated calls (median), and the server's labels must equal the runtime's.

A call is timed from sending the request to the last byte of the answer: the server's work.
The bench client's own `json.loads` of the answer (10,000 labels and 30,000 probabilities,
~14 ms here, a third of the call) is the client's cost, not the server's, and happens after
the clock stops; every answer is still decoded and checked.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_ROWS = 10_000
# Iris's feature ranges (sepal/petal length/width, cm): the rows stay inside training range.
_LOW = np.array([4.3, 2.0, 1.0, 0.1])
_HIGH = np.array([7.9, 4.4, 6.9, 2.5])


class RowsError(RuntimeError):
    """The large request failed or its answer was wrong."""


@dataclass(frozen=True)
class RowsResult:
    """Rows per second of one way of predicting N rows."""

    rows: int
    calls: int
    median_s: float

    @property
    def rows_per_s(self) -> float:
        """Rows predicted per second (median call)."""
        return self.rows / self.median_s if self.median_s > 0 else 0.0


def make_rows(n: int = N_ROWS, seed: int = 0) -> np.ndarray:
    """n float64 Iris-like rows, uniform within the training range, rounded to 0.1 cm."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(_LOW, _HIGH, size=(n, 4)), 1)


def v2_body(rows: np.ndarray) -> bytes:
    """The V2 infer request for `rows`: one FP64 tensor named `input`, data flat row-major."""
    tensor = {
        "name": "input",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def _repeat(call: Callable[[], Any], budget_s: float, min_calls: int = 3) -> tuple[int, float]:
    """Call once to warm up, then repeatedly within `budget_s` (at least min_calls); median s."""
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_calls or (time.perf_counter() < deadline and len(times) < 200):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return len(times), statistics.median(times)


def _labels_from_v2(payload: dict[str, Any]) -> list[Any]:
    for output in payload.get("outputs", []):
        if output.get("name") == "predict":
            return list(output["data"])
    raise RowsError(f"the V2 answer has no `predict` output: {str(payload)[:300]}")


def bench_v2(
    base_url: str, rows: np.ndarray, budget_s: float, model: str = "iris"
) -> tuple[RowsResult, list[Any]]:
    """Time the V2 infer request over one keep-alive connection; return the labels it gave."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    body = v2_body(rows)
    path = f"/v2/models/{model}/infer"
    answers: list[bytes] = []

    def call() -> None:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RowsError(f"POST {path} answered {response.status}: {data[:300]!r}")
        if not answers or data != answers[0]:  # keep the first answer and any that differ
            answers.append(data)

    try:
        calls, median = _repeat(call, budget_s)
    finally:
        conn.close()
    first = _labels_from_v2(json.loads(answers[0]))
    if len(first) != len(rows):
        raise RowsError(f"POST {path} gave {len(first)} labels for {len(rows)} rows")
    for data in answers[1:]:  # the same request: every answer's labels must be the first's
        if _labels_from_v2(json.loads(data)) != first:
            raise RowsError(f"POST {path} gave different labels for the same rows")
    return RowsResult(len(rows), calls, median), first


def find_artifact(home: Path, name: str = "iris") -> tuple[Path, Any]:
    """The verified folder and manifest of model `name`'s newest version in TABSERVE_HOME."""
    from tabserve.artifacts.registry import open_registry
    from tabserve.settings import Settings

    settings = Settings(home=home, registry_url=None)
    with open_registry(settings) as registry:
        manifest, folder = registry.fetch(name)
    return folder, manifest


def load_runtime(folder: Path, manifest: Any) -> Any:
    """tabserve's runtime for the artifact, with one intra-op thread as a serving worker has."""
    from tabserve.runtime import load_runtime as load

    return load(folder, manifest, threads=1)


def bench_in_process(
    runtime: Any, rows: np.ndarray, budget_s: float
) -> tuple[RowsResult, list[Any]]:
    """Time `runtime.predict(rows)` in this process; return its labels."""
    calls, median = _repeat(lambda: runtime.predict(rows), budget_s)
    labels = np.asarray(runtime.predict(rows).labels).tolist()
    return RowsResult(len(rows), calls, median), labels


def label_mismatches(server: list[Any], local: list[Any]) -> int:
    """How many rows the server labelled differently from the in-process runtime."""
    return sum(1 for a, b in zip(server, local, strict=True) if str(a) != str(b))
