"""Several versions side by side and shadow traffic, against `tabserve serve` with 2 workers.

`tabserve serve iris iris:2 --shadow iris:3`, iris:1 in production: the unversioned routes
reach iris:1, the versioned ones iris:1 or iris:2, and every live request is copied to
iris:3, a constant classifier (always class 0), so the disagreements are known exactly: the
live labels that are not 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from tests.support.models import iris_frame, promote, publish, register_iris
from tests.support.net import wait_until
from tests.support.server import Server, metric, sqlite_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("shadow")
    home = tmp / "home"
    register_iris(home)
    register_iris(home)
    # iris:3 always answers class 0, on the same inputs as the lecture's model.
    X, y = iris_frame()
    constant = Pipeline([("clf", DummyClassifier(strategy="constant", constant=0))]).fit(X, y)
    assert publish(home, constant, X).version == 3
    promote(home, "iris:1")
    served = Server(home, tmp / "serve.log", "iris", "iris:2", "--shadow", "iris:3")
    try:
        yield served.wait_ready()
    finally:
        served.stop()


def _v2(rows: list[list[float]]) -> dict[str, object]:
    data = [v for r in rows for v in r]
    return {
        "inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": data}]
    }


def test_versions_side_by_side(server: Server) -> None:
    flower = [[7.7, 3.0, 6.1, 2.3]]
    client = server.client
    for _ in range(10):  # both workers
        plain = client.post("/v2/models/iris/infer", json=_v2(flower))
        assert plain.json()["model_version"] == "1"
        two = client.post("/v2/models/iris/versions/2/infer", json=_v2(flower))
        assert two.status_code == 200 and two.json()["model_version"] == "2"
        assert two.headers["x-model-version"] == "2"
        v1 = client.post("/v1/models/iris/versions/2:predict", json={"instances": flower})
        assert v1.json() == {"predictions": [2]} and v1.headers["x-model-version"] == "2"
        one = client.post("/v1/models/iris/versions/1:predict", json={"instances": flower})
        assert one.headers["x-model-version"] == "1"
    assert client.get("/v2/models/iris/versions/2/ready").status_code == 200
    for unknown in ("3", "9"):  # the shadow is not routable
        missing = client.post(f"/v2/models/iris/versions/{unknown}/infer", json=_v2(flower))
        assert missing.status_code == 404
        assert "loaded: 1, 2" in missing.json()["error"]


def test_shadow_agreement_is_counted_exactly_and_logged(server: Server) -> None:
    rows = load_iris().data.tolist()
    before = server.metrics()
    response = server.client.post("/v1/models/iris:predict", json={"instances": rows})
    assert response.status_code == 200 and response.headers["x-model-version"] == "1"
    labels = response.json()["predictions"]
    expected = sum(1 for label in labels if label != 0)  # the shadow always says 0
    assert expected == 100  # the lecture's model gets Iris right: 50 of each class

    def counted() -> bool:
        now = server.metrics()
        return metric(now, "tabserve_shadow_predictions_total", model="iris", version="3") - metric(
            before, "tabserve_shadow_predictions_total", model="iris", version="3"
        ) == len(rows)

    wait_until(counted, 30, "the shadow copy counted")
    after = server.metrics()
    disagreed = metric(
        after, "tabserve_shadow_disagreements_total", model="iris", version="3"
    ) - metric(before, "tabserve_shadow_disagreements_total", model="iris", version="3")
    assert disagreed == expected
    assert metric(after, "tabserve_shadow_latency_seconds_count", model="iris", version="3") >= 1
    request_id = response.headers["x-request-id"]
    assert request_id.replace("-", "").isalnum()  # the server's own id: safe to inline
    query = f"SELECT row, role, version FROM prediction_log WHERE request_id = '{request_id}'"  # noqa: S608
    wait_until(lambda: len(sqlite_rows(server.home, query)) == 2 * len(rows), 60, "logged rows")
    logged = sqlite_rows(server.home, query)
    assert sorted({(role, str(version)) for _, role, version in logged}) == [
        ("live", "1"),
        ("shadow", "3"),
    ]
