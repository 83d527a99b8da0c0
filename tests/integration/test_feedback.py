"""Feedback through the real server: true labels by request id and row -> the live accuracy gauge."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from tests.integration.served import Served, metric, register_iris, sqlite_rows
from tests.support.net import wait_until

pytestmark = pytest.mark.slow


def test_feedback_sets_live_accuracy_to_the_fraction_predicted_right(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register_iris(home)
    server = Served(home, tmp_path / "serve.log").wait_ready()
    try:
        rows = load_iris().data[::15].tolist()  # 10 flowers
        response = server.client.post("/v1/models/iris:predict", json={"instances": rows})
        assert response.status_code == 200
        predicted = response.json()["predictions"]
        request_id = response.headers["x-request-id"]
        wait_until(lambda: len(sqlite_rows(home)) == len(rows), 30, "rows logged")
        # 7 labels agree with the prediction, 3 do not: live accuracy 0.7.
        labels = [
            {"request_id": request_id, "row": i, "label": p if i < 7 else (p + 1) % 3}
            for i, p in enumerate(predicted)
        ]
        answer = server.client.post("/v1/models/iris/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": "iris", "labels": 10}

        def accuracy() -> float:
            samples = server.metrics()
            return metric(samples, "tabserve_live_accuracy_ratio", model="iris", version="1")

        wait_until(lambda: accuracy() == pytest.approx(0.7), 30, "live accuracy published")
        samples = server.metrics()
        assert metric(samples, "tabserve_feedback_labels_total", model="iris") == 10

        # A later label replaces an earlier one: now 8 of 10 agree.
        fix = [{"request_id": request_id, "row": 7, "label": predicted[7]}]
        assert server.client.post("/v1/models/iris/feedback", json={"labels": fix}).is_success
        wait_until(lambda: accuracy() == pytest.approx(0.8), 30, "accuracy updated")
    finally:
        assert server.stop() == 0, server.output()


def test_feedback_errors_say_what_is_wrong(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register_iris(home)
    server = Served(home, tmp_path / "serve.log").wait_ready()
    try:
        label = {"labels": [{"request_id": "x", "row": 0, "label": 1}]}
        missing = server.client.post("/v1/models/nope/feedback", json=label)
        assert missing.status_code == 404 and "iris" in missing.json()["error"]
        empty = server.client.post("/v1/models/iris/feedback", json={"labels": []})
        assert empty.status_code == 422
        wrong = server.client.post("/v1/models/iris/feedback", json={"labels": [{"row": 0}]})
        assert wrong.status_code == 422
        assert wrong.json()["details"][0]["loc"] == ["labels", 0]
        assert server.client.get("/v1/models/iris/feedback").status_code == 405
    finally:
        assert server.stop() == 0, server.output()
