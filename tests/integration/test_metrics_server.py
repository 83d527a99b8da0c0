"""`/metrics`, drift and the logs of the real server, read as an operator reads them.

One `tabserve serve --workers 2 --access-log` per module: exact counts after a known sequence
of requests (aggregated over both workers), the drift gauge under training-like and shifted
data, one JSON access line per request; and `serve --dev --log-format console`.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from tests.support.models import register_iris
from tests.support.net import wait_until
from tests.support.server import LECTURE, Server, metric, sqlite_rows

pytestmark = pytest.mark.slow

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
V2 = "/v2/models/{name}/infer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("metrics") / "home"
    register_iris(home)
    running = Server(home, tmp_path_factory.mktemp("log") / "serve.log", "iris", "--access-log")
    try:
        yield running.wait_ready()
    finally:
        assert running.stop() == 0, running.output()


def v2_body(rows: list[list[float]]) -> dict[str, object]:
    data = [v for r in rows for v in r]
    return {
        "inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": data}]
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """Sum of every series of one sample name."""
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_count_a_known_sequence_across_both_workers(server: Server) -> None:
    before = server.metrics()
    workers: set[str] = set()
    lecture = 0
    # A new connection per request, until both workers answered (at least 7 GETs).
    while lecture < 7 or (len(workers) < 2 and lecture < 200):
        response = httpx.get(server.url + LECTURE, timeout=10)
        assert response.status_code == 200
        workers.add(response.headers["x-request-id"][:12])  # per-process id prefix
        lecture += 1
    assert len(workers) == 2
    five = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]] + [
        [6.0, 3.0, 4.5, 1.5]
    ] * 2
    for _ in range(3):
        response = httpx.post(server.url + "/v2/models/iris/infer", json=v2_body(five), timeout=10)
        assert response.status_code == 200
    for _ in range(2):
        bad = httpx.post(
            server.url + "/v1/models/iris:predict", json={"instances": [[1, "x", 1, 1]]}, timeout=10
        )
        assert bad.status_code == 422
    assert httpx.get(server.url + "/v2/models/nope", timeout=10).status_code == 404
    after = server.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    requests = "tabserve_http_requests_total"
    assert delta(requests, route="/", method="GET", status="200") == lecture
    assert delta(requests, route=V2, method="POST", status="200") == 3
    assert delta(requests, route="/v1/models/{name}:predict", method="POST", status="422") == 2
    assert delta(requests, route="/v2/models/{name}", method="GET", status="404") == 1
    duration = "tabserve_http_request_duration_seconds_count"
    assert delta(duration, route="/", method="GET") == lecture
    assert delta(duration, route=V2, method="POST") == 3
    predicted = total(after, "tabserve_predictions_total") - total(
        before, "tabserve_predictions_total"
    )
    assert predicted == lecture + 3 * 5
    assert (
        delta("tabserve_predictions_total", model="iris", version="1", **{"class": "2"}) >= lecture
    )
    failures = total(after, "tabserve_validation_failures_total") - total(
        before, "tabserve_validation_failures_total"
    )
    assert failures == 2
    assert metric(after, "tabserve_model_ready", model="iris", version="1") == 1
    assert metric(after, "tabserve_prediction_log_rows_dropped_total") == 0


def iris_rows() -> list[list[float]]:
    return load_iris().data.tolist()


def drift(server: Server) -> dict[str, float]:
    """The drift gauge of each feature that has one yet."""
    samples = server.metrics()
    keys = {
        f: ("tabserve_feature_drift_psi", (("feature", f), ("model", "iris"))) for f in FEATURES
    }
    return {f: samples[key] for f, key in keys.items() if key in samples}


def written(server: Server) -> float:
    return metric(server.metrics(), "tabserve_prediction_log_rows_written_total")


def test_drift_gauge_stays_low_for_training_like_data_and_rises_for_shifted(
    server: Server,
) -> None:
    rows = iris_rows()
    # The drift window is the last 10,000 rows: fill it with the training data itself, so
    # rows that earlier tests sent to this server do not count.
    for _ in range(10_000 // len(rows) + 1):
        response = server.client.post("/v1/models/iris:predict", json={"instances": rows})
        assert response.status_code == 200
    target = written(server)
    wait_until(
        lambda: len(sqlite_rows(server.home)) >= target and written(server) >= target,
        60,
        "rows shipped",
    )

    def calm() -> bool:
        values = drift(server)
        return len(values) == 4 and all(v < 0.2 for v in values.values())

    wait_until(calm, 30, "drift published and under the threshold for training-like data")
    shifted = [[v * 1.5 + 2.0 for v in r] for r in rows]
    for _ in range(20):
        response = server.client.post("/v1/models/iris:predict", json={"instances": shifted})
        assert response.status_code == 200
    wait_until(
        lambda: len(drift(server)) == 4 and all(v > 0.2 for v in drift(server).values()),
        30,
        "drift over threshold",
    )


def test_access_log_is_one_json_line_per_request_without_feature_values(server: Server) -> None:
    marker = "access-check-7f3a"
    flower = [6.3, 2.7, 4.9, 1.8]
    response = server.client.post(
        "/v1/models/iris:predict", json={"instances": [flower]}, headers={"x-request-id": marker}
    )
    assert response.status_code == 200

    def lines() -> list[dict[str, object]]:
        out = []
        for line in server.output().splitlines():
            if marker in line:
                out.append(json.loads(line))
        return out

    wait_until(lambda: len(lines()) >= 1, 10, "access line written")
    (line,) = lines()
    assert line["event"] == "request"
    assert line["request_id"] == marker
    assert line["route"] == "/v1/models/{name}:predict"
    assert line["method"] == "POST" and line["status"] == 200
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
    assert line["model"] == "iris" and line["version"] == "1"
    # No feature values: none of the line's fields holds one (a latency or timestamp may
    # contain the same digits, so compare values, not text).
    assert not {json.dumps(v) for v in flower} & {json.dumps(v) for v in line.values()}
    assert not any(isinstance(v, list | dict) for v in line.values())
    for raw in server.output().splitlines():
        if raw.startswith("{"):
            json.loads(raw)  # every line the server writes is JSON


def test_dev_server_logs_in_console_format_and_ships_its_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register_iris(home)
    server = Server(
        home,
        tmp_path / "dev.log",
        *("iris", "--dev", "--log-format", "console", "--access-log"),
        workers=None,
    )
    process, log = server.process, server.log_path
    try:
        server.wait_ready()
        response = httpx.get(server.url + LECTURE, timeout=10)
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        server.stop()
    text = log.read_text()
    ready_lines = [line for line in text.splitlines() if "model ready" in line]
    assert ready_lines and not ready_lines[0].startswith("{")
    assert "model=iris" in ready_lines[0]
    access = [line for line in text.splitlines() if rid in line]
    assert access and "status=200" in access[0]
    assert "model=iris" in access[0] and "version=1" in access[0]  # GET / names no model
    # serve --dev ships with a thread: the row is in the log once the server has stopped.
    assert [r[0] for r in sqlite_rows(home)] == [rid]
