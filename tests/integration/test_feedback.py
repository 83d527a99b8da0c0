"""Feedback through the real server (labels by either request id -> live accuracy) and on Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sklearn.datasets import load_iris
from tests.support.models import register_iris
from tests.support.net import wait_until
from tests.support.server import Server, metric, sqlite_rows
from tests.unit.monitoring.feedback_cases import check_feedback_by_either_id, labels, log_row

from tabserve.monitoring.sinks import SCHEMA_VERSION, PostgresSink

pytestmark = pytest.mark.slow


def test_feedback_sets_live_accuracy_to_the_fraction_predicted_right(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register_iris(home)
    server = Server(home, tmp_path / "serve.log", "iris").wait_ready()
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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests below (their feedback never touches the same rows)."""
    tmp_path = tmp_path_factory.mktemp("feedback")
    home = tmp_path / "home"
    register_iris(home)
    server = Server(home, tmp_path / "serve.log", "iris").wait_ready()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.output()


def refused(server: Server) -> float:
    """All of tabserve_validation_failures_total, whatever the model and reason."""
    return sum(
        v
        for (name, _), v in server.metrics().items()
        if name == "tabserve_validation_failures_total"
    )


def test_feedback_errors_say_what_is_wrong_and_are_no_refused_predictions(served: Server) -> None:
    client = served.client
    before = refused(served)
    label = {"labels": [{"request_id": "x", "row": 0, "label": 1}]}
    missing = client.post("/v1/models/nope/feedback", json=label)
    assert missing.status_code == 404 and "iris" in missing.json()["error"]
    empty = client.post("/v1/models/iris/feedback", json={"labels": []})
    assert empty.status_code == 422
    wrong = client.post("/v1/models/iris/feedback", json={"labels": [{"row": 0}]})
    assert wrong.status_code == 422
    assert wrong.json()["details"][0]["loc"] == ["labels", 0]
    garbled = client.post(
        "/v1/models/iris/feedback",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert garbled.status_code in (400, 422), garbled.text
    assert client.get("/v1/models/iris/feedback").status_code == 405
    assert refused(served) == before  # 422s of feedback are no refused predictions
    # ...while a refused prediction still counts, on the same server.
    bad = client.post("/v1/models/iris:predict", json={"instances": [["a", "b", "c", "d"]]})
    assert bad.status_code == 422
    assert refused(served) == before + 1


def test_feedback_by_the_clients_own_request_id(served: Server) -> None:
    rows = load_iris().data[1::15].tolist()  # 10 flowers
    response = served.client.post(
        "/v1/models/iris:predict",
        json={"instances": rows},
        headers={"x-request-id": "order-4711"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "order-4711"  # the server's id is never shown
    predicted = response.json()["predictions"]
    query = "SELECT request_id, row FROM prediction_log WHERE client_request_id = 'order-4711'"
    wait_until(lambda: len(sqlite_rows(served.home, query)) == len(rows), 30, "rows logged")
    # 4 of the 10 labels agree with the prediction: live accuracy 0.4, keyed by the client id.
    labels = [
        {"request_id": "order-4711", "row": i, "label": p if i < 4 else (p + 1) % 3}
        for i, p in enumerate(predicted)
    ]
    answer = served.client.post("/v1/models/iris/feedback", json={"labels": labels})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": "iris", "labels": 10}

    def accuracy() -> float:
        return metric(served.metrics(), "tabserve_live_accuracy_ratio", model="iris", version="1")

    wait_until(lambda: accuracy() == pytest.approx(0.4), 30, "live accuracy published")


# The Postgres tables as the first tabserve release created them (schema version 1).
PG_V1_DDL = """
CREATE TABLE prediction_log (
    request_id text NOT NULL, "row" integer NOT NULL, client_request_id text,
    ts timestamptz NOT NULL, model text NOT NULL, version integer NOT NULL, role text NOT NULL,
    input jsonb NOT NULL, output jsonb NOT NULL, latency_ms double precision NOT NULL,
    PRIMARY KEY (request_id, "row", role));
CREATE INDEX prediction_log_model_ts ON prediction_log (model, ts);
CREATE TABLE prediction_feedback (
    request_id text NOT NULL, "row" integer NOT NULL, model text NOT NULL, label jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (request_id, "row"));
CREATE INDEX prediction_feedback_model ON prediction_feedback (model, received_at);
CREATE TABLE prediction_log_schema (version integer NOT NULL);
INSERT INTO prediction_log_schema VALUES (1);
"""
# Version 2 added the client-id index over every row.
PG_V2_DDL = PG_V1_DDL.replace("VALUES (1)", "VALUES (2)") + (
    "CREATE INDEX prediction_log_model_client ON prediction_log (model, client_request_id);"
)


def test_postgres_matches_feedback_by_either_id(postgres_url: str) -> None:
    sink = PostgresSink(postgres_url)
    try:
        check_feedback_by_either_id(sink)
    finally:
        sink.close()


@pytest.mark.parametrize("ddl", [PG_V1_DDL, PG_V2_DDL], ids=["v1", "v2"])
def test_postgres_log_of_an_older_release_gains_the_partial_client_id_index(
    postgres_url: str, ddl: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(ddl)
    sink = PostgresSink(postgres_url)
    try:
        sink.write([log_row("srv-old", 0, "client-old", "x", "toy")])
        assert sink.add_feedback("toy", [("client-old", 0, "y")]) == 1
        assert labels(sink) == {("srv-old", 0): "y"}
    finally:
        sink.close()
    with psycopg.connect(postgres_url) as conn:
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'prediction_log_model_client'"
        ).fetchone()
        version = conn.execute("SELECT version FROM prediction_log_schema").fetchall()
    assert index is not None and "(model, client_request_id)" in index[0]
    assert "WHERE (client_request_id IS NOT NULL)" in index[0]
    assert version == [(SCHEMA_VERSION,)]
