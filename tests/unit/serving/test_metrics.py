"""Metrics: exact counts, aggregated over worker processes, parsed as Prometheus reads them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tabserve.serving import metrics
from tabserve.types import Feature, Manifest, RuntimeInfo


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh in-process metrics."""
    monkeypatch.delenv(metrics.ENV_DIR, raising=False)
    metrics._build()
    yield
    metrics._build()


def manifest() -> Manifest:
    feats = [
        Feature(name="a", column="a", kind="number", dtype="float64", min=0.0, max=1.0),
        Feature(name="b", column="b", kind="number", dtype="float64", min=-1.0, max=1.0),
    ]
    return Manifest(
        name="m",
        version=1,
        created_at="2026-01-01T00:00:00Z",
        task="classification",
        target="y",
        features=feats,
        classes=[0, 1],
        data_fingerprint="x",
        source="s",
        estimator="e",
        runtime=RuntimeInfo(kind="onnx", file="model.onnx"),
    )


def test_single_process_counts_are_exact(single_process: None) -> None:
    for _ in range(3):
        metrics.observe_request("/v1/models/{name}:predict", "POST", 200, 0.0004)
    metrics.observe_request("/v1/models/{name}:predict", "POST", 422, 0.0001)
    metrics.count_predictions("iris", 2, np.array([0, 2, 2]))
    metrics.count_predictions("iris", 2, np.array([1]))
    metrics.count_predictions("house", 1, np.array([1.5, 2.5]), regression=True)
    s = samples(metrics.render()[0])
    route = ("route", "/v1/models/{name}:predict")
    assert s[("tabserve_http_requests_total", (("method", "POST"), route, ("status", "200")))] == 3
    assert s[("tabserve_http_requests_total", (("method", "POST"), route, ("status", "422")))] == 1
    assert s[("tabserve_http_request_duration_seconds_count", (("method", "POST"), route))] == 4
    le = ("le", "0.0005")
    assert (
        s[("tabserve_http_request_duration_seconds_bucket", (le, ("method", "POST"), route))] == 4
    )

    def pred(model: str, v: str, c: str) -> float:
        return s[("tabserve_predictions_total", (("class", c), ("model", model), ("version", v)))]

    assert (pred("iris", "2", "0"), pred("iris", "2", "1"), pred("iris", "2", "2")) == (1, 1, 2)
    assert pred("house", "1", "") == 2


def test_counts_on_an_event_loop_are_exact_at_a_scrape_and_after_the_pass(
    single_process: None,
) -> None:
    route = ("route", "/")
    count = ("tabserve_http_requests_total", (("method", "GET"), route, ("status", "200")))
    bucket = (
        "tabserve_http_request_duration_seconds_bucket",
        (("le", "0.001"), ("method", "GET"), route),
    )

    async def serve() -> tuple[dict, dict]:  # type: ignore[type-arg]
        for seconds in (0.0004, 0.001, 0.003):
            metrics.observe_request("/", "GET", 200, seconds)
        metrics.observe_batch("iris", 3, 0.0)
        metrics.count_predictions("iris", 1, np.array([2]))
        metrics.request_started()
        scraped = samples(metrics.render()[0])  # a scrape in the same pass folds it first
        metrics.observe_request("/", "GET", 200, 0.0001)
        await asyncio.sleep(0)  # the loop's pass ends: its counts are folded
        return scraped, samples(generate_latest(metrics._registry))

    scraped, after = asyncio.run(serve())
    assert (scraped[count], scraped[bucket]) == (3, 2)
    assert (after[count], after[bucket]) == (4, 3)
    assert after[("tabserve_http_request_duration_seconds_sum", (("method", "GET"), route))] == (
        pytest.approx(0.0045)
    )
    assert after[("tabserve_batch_size_rows_bucket", (("le", "4.0"), ("model", "iris")))] == 1
    pred = ("tabserve_predictions_total", (("class", "2"), ("model", "iris"), ("version", "1")))
    assert after[pred] == 1
    assert after[("tabserve_http_requests_in_flight", ())] == 1


def test_counts_outside_a_request_are_folded_within_the_latest_fold_interval(
    single_process: None,
) -> None:
    pred = ("tabserve_predictions_total", (("class", "2"), ("model", "iris"), ("version", "1")))

    async def shadow_like() -> dict:  # type: ignore[type-arg]
        metrics.count_predictions("iris", 1, np.array([2, 2]))  # no request answered
        await asyncio.sleep(metrics.FOLD_LATEST_S * 10)  # the loop keeps running, no scrape
        return samples(generate_latest(metrics._registry))

    assert asyncio.run(shadow_like())[pred] == 2


def test_out_of_range_and_missing_are_counted_per_feature(single_process: None) -> None:
    m = manifest()
    metrics.count_out_of_range("m", m, np.array([[0.5, 0.0], [0.5, 0.5]]))  # all in range
    metrics.count_out_of_range("m", m, np.array([[2.0, 0.0], [np.nan, 5.0], [-1.0, np.nan]]))
    s = samples(metrics.render()[0])
    assert s[("tabserve_feature_out_of_range_total", (("feature", "a"), ("model", "m")))] == 2
    assert s[("tabserve_feature_out_of_range_total", (("feature", "b"), ("model", "m")))] == 1
    assert s[("tabserve_feature_missing_total", (("feature", "a"), ("model", "m")))] == 1
    assert s[("tabserve_feature_missing_total", (("feature", "b"), ("model", "m")))] == 1


WORKER = """
import sys
from tabserve.serving import metrics
import numpy as np
n = int(sys.argv[1])
metrics.request_started()
for _ in range(n):
    metrics.observe_request("/", "GET", 200, 0.001)
metrics.observe_batch("iris", n, 0.0)
metrics.count_predictions("iris", 1, np.array([2] * n))
metrics.count_predlog(spooled=n)
metrics.set_model_loaded("iris", 1, 0.25)
"""


def test_counts_are_aggregated_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics.ENV_DIR, raising=False)  # so teardown restores "unset"
    folder = tmp_path / "prom"
    (folder).mkdir()
    (folder / "counter_99999.db").write_bytes(b"stale")  # left by a previous run
    metrics.prepare_multiprocess_dir(folder)
    try:
        assert not (folder / "counter_99999.db").exists()
        env = {**os.environ, metrics.ENV_DIR: str(folder)}
        for n in (5, 7):
            subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True, timeout=60)
        s = samples(metrics.render()[0])
        req = (
            "tabserve_http_requests_total",
            (("method", "GET"), ("route", "/"), ("status", "200")),
        )
        assert s[req] == 12
        assert s[("tabserve_batch_size_rows_count", (("model", "iris"),))] == 2
        assert (
            s[("tabserve_predictions_total", (("class", "2"), ("model", "iris"), ("version", "1")))]
            == 12
        )
        assert s[("tabserve_prediction_log_rows_spooled_total", ())] == 12
        assert s[("tabserve_model_load_seconds", (("model", "iris"), ("version", "1")))] == 0.25
    finally:
        os.environ.pop(metrics.ENV_DIR, None)
        metrics._build()


def test_a_dead_workers_in_flight_gauge_is_dropped_at_the_next_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics.ENV_DIR, raising=False)  # so teardown restores "unset"
    folder = metrics.prepare_multiprocess_dir(tmp_path / "prom")
    try:
        env = {**os.environ, metrics.ENV_DIR: str(folder)}
        code = WORKER + "\nimport os; print(os.getpid())"
        out = subprocess.run(
            [sys.executable, "-c", code, "1"],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        pid = int(out.stdout.strip())
        # The worker died with a request in flight (as under SIGKILL): its live gauge is on disk.
        assert list(folder.glob(f"gauge_livesum_{pid}.db"))
        s = samples(metrics.render()[0])
        assert s[("tabserve_http_requests_in_flight", ())] == 0
        req = (
            "tabserve_http_requests_total",
            (("method", "GET"), ("route", "/"), ("status", "200")),
        )
        assert s[req] == 1  # counters of a dead worker still count
        assert not list(folder.glob(f"gauge_livesum_{pid}.db"))
    finally:
        os.environ.pop(metrics.ENV_DIR, None)
        metrics._build()
