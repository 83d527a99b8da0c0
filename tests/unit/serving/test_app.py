"""The app over HTTP (in process): every protocol's canonical payloads and every error status."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.serving.conftest import FLOWER, TestClient

DATA = Path(__file__).parents[2] / "data" / "protocols"


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text and "/work" not in response.text
    return body


def test_lecture_contract_byte_for_byte(client: TestClient) -> None:
    case = load("lecture.json")
    response = client.get(case["request"]["path"])
    assert response.status_code == 200
    assert response.content == case["response"]["body"].encode()
    assert response.headers["content-type"] == case["response"]["content_type"]
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-request-id"]
    for error in case["errors"]:
        response = client.get(error["path"])
        assert response.status_code == error["status"]
        assert response.content == error["body"].encode()


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    path = load("lecture.json")["request"]["path"]
    assert (
        client.get(path, headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    )
    first = client.get(path).headers["x-request-id"]
    second = client.get("/nowhere").headers["x-request-id"]
    assert first and second and first != second


def test_kserve_v1_payloads(client: TestClient) -> None:
    data = load("kserve_v1.json")
    for case in data["cases"]:
        response = client.post(case["path"], json=case["request"])
        assert response.status_code == 200, response.text
        assert response.json() == case["response"]
    for case in data["proba"]:
        response = client.post(case["path"], json=case["request"])
        assert response.status_code == 200
        (row,) = response.json()["predictions"]
        assert len(row) == 3 and row[2] > 0.9 and sum(row) == pytest.approx(1.0)
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}


def test_oip_v2_payloads_and_metadata(client: TestClient) -> None:
    for case in load("oip_v2.json")["cases"]:
        response = client.post("/v2/models/iris/infer", json=case["request"])
        assert response.status_code == 200, response.text
        assert response.json() == case["response"]
    response = client.post("/v2/models/iris/versions/1/infer", json=case["request"])
    assert response.status_code == 200
    meta = client.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["parameters"]["classes"] == [0, 1, 2]
    assert client.get("/v2").json()["name"] == "tabserve"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/iris/ready").status_code == 200


def test_oip_v2_gzip_body_without_content_type(client: TestClient) -> None:
    request = load("oip_v2.json")["cases"][0]["request"]
    body = gzip.compress(json.dumps(request).encode())
    response = client.post(
        "/v2/models/iris/infer", content=body, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [2, 0]


def test_mlflow_payloads(client: TestClient) -> None:
    data = load("mlflow.json")
    for case in data["cases"]:
        response = client.post("/invocations", json=case["request"])
        assert response.status_code == 200, response.text
        assert response.json() == case["response"]
    response = client.post(
        "/invocations", content=data["csv"]["body"], headers={"Content-Type": "text/csv"}
    )
    assert response.json() == data["csv"]["response"]
    for path in ("/ping", "/health", "/version"):
        assert client.get(path).status_code == 200


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/v1/models/iris:predict" in spec["paths"]
    assert "swagger" in client.get("/docs").text.lower()
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/models/iris:predict", {"instances": [[7.7, 3.0, 6.1]]}, ["instances", 0]),
        (
            "/v1/models/iris:predict",
            {"instances": [[7.7, "x", 6.1, 2.3]]},
            ["instances", 0, "sepal_width"],
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [[7.7, True, 6.1, 2.3]]},
            ["instances", 0, "sepal_width"],
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [[7.7, [1], 6.1, 2.3]]},
            ["instances", 0, "sepal_width"],
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [[7.7, {"a": 1}, 6.1, 2.3]]},
            ["instances", 0, "sepal_width"],
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [[7.7, None, 6.1, 2.3]]},
            ["instances", 0, "sepal_width"],
        ),
        ("/v1/models/iris:predict", {"instances": [[7.7, 3.0, 6.1, 10**400]]}, None),
        ("/v1/models/iris:predict", {"instances": []}, ["instances"]),
        (
            "/v1/models/iris:predict",
            {"instances": [{**FLOWER, "colour": 1}]},
            ["instances", 0, "colour"],
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [{"sepal_length": 1.0}]},
            ["instances", 0, "sepal_width"],
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            None,
        ),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "BOOL", "data": [True] * 4}
                ]
            },
            None,
        ),
        ("/invocations", {"dataframe_records": [{"sepal_length": 1.0}]}, None),
    ],
)
def test_validation_errors_are_422_naming_row_and_feature(
    client: TestClient, path: str, body: Any, loc: list[Any] | None
) -> None:
    content = json.dumps(body).encode()
    response = client.post(path, content=content, headers={"Content-Type": "application/json"})
    if response.status_code == 400:  # a number too large for JSON's parser is malformed JSON
        assert_json_error(response, 400)
        return
    error = assert_json_error(response, 422)
    assert error["details"]
    if loc is not None:
        assert error["details"][0]["loc"] == loc


def test_unseen_category_and_missing_values(multi: TestClient) -> None:
    ok = multi.post("/v1/models/mixed:predict", json={"instances": [{"age": None, "city": "lyon"}]})
    assert ok.status_code == 200 and ok.json()["predictions"] in (["no"], ["yes"])
    bad = multi.post("/v1/models/mixed:predict", json={"instances": [{"age": 30, "city": "rome"}]})
    assert assert_json_error(bad, 422)["details"][0]["loc"] == ["instances", 0, "city"]
    missing = multi.post(
        "/v1/models/mixed:predict", json={"instances": [{"age": 30, "city": None}]}
    )
    assert assert_json_error(missing, 422)["details"][0]["loc"] == ["instances", 0, "city"]
    v2 = multi.post(
        "/v2/models/mixed/infer",
        json={
            "inputs": [
                {"name": "age", "shape": [1], "datatype": "FP64", "data": [40.0]},
                {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["paris"]},
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [1],
        "data": ["yes"],
    }


def test_regressor_has_no_probabilities(multi: TestClient) -> None:
    response = multi.post("/v1/models/reg:predict", json={"instances": [[1.0, 0.0]]})
    assert response.json()["predictions"] == [pytest.approx(2.0)]
    assert_json_error(
        multi.post("/v1/models/reg:predict_proba", json={"instances": [[1.0, 0.0]]}), 422
    )
    outputs = multi.post(
        "/v2/models/reg/infer",
        json={"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 0]}]},
    ).json()["outputs"]
    assert [(o["name"], o["datatype"]) for o in outputs] == [("predict", "FP64")]


def test_several_models_without_default(multi: TestClient) -> None:
    body = assert_json_error(multi.get("/?sepal_length=1"), 404)
    assert "iris" in body["error"] and "mixed" in body["error"]
    flower = "&".join(f"{k}={v}" for k, v in FLOWER.items())
    assert multi.get(f"/models/iris?{flower}").content == b'{"prediction":"2"}\n'


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{", "truncated"),
        (b'{"instances": [[1,2,3,4]], "instances": []}', "duplicate keys"),
        (b"[" * 65 + b"]" * 65, "65 levels"),
        (b"[" * 200_000, "200,000 levels"),
        (b'{"instances": [[1' + b"0" * 5000 + b",2,3,4]]}", "5,000-digit integer"),
        (b'{"instances": "\xff"}', "invalid UTF-8"),
        (b"", "empty"),
    ],
)
def test_malformed_bodies_are_400(client: TestClient, body: bytes, why: str) -> None:
    response = client.post(
        "/v1/models/iris:predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, 400)
    assert client.get("/v2/health/live").status_code == 200


def test_64_levels_are_accepted_by_the_parser(client: TestClient) -> None:
    body = b'{"instances":' + b"[" * 63 + b"]" * 63 + b"}"
    response = client.post(
        "/v1/models/iris:predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422  # parsed, then refused by the schema


def test_media_type_size_model_and_method_errors(client: TestClient) -> None:
    import pickle

    assert_json_error(
        client.post(
            "/v1/models/iris:predict",
            content=pickle.dumps({"x": 1}),
            headers={"Content-Type": "application/octet-stream"},
        ),
        415,
    )
    assert_json_error(
        client.post("/invocations", content=b"a=1", headers={"Content-Type": "text/plain"}), 415
    )
    assert_json_error(
        client.post("/v1/models/nope:predict", json={"instances": [[1, 2, 3, 4]]}), 404
    )
    assert_json_error(client.get("/v2/models/nope"), 404)
    assert_json_error(client.get("/v2/models/iris/versions/9"), 404)
    assert_json_error(client.get("/no/such/path"), 404)
    response = assert_json_error(client.delete("/v1/models/iris:predict"), 405)
    assert response["error"]
    assert_json_error(client.post("/"), 405)


def test_body_over_the_limit_is_413(iris: Any) -> None:
    from tests.unit.serving.conftest import make_client

    for small in make_client(iris, max_body_bytes=1000):
        body = json.dumps({"instances": [[7.7, 3.0, 6.1, 2.3]] * 100})
        assert_json_error(
            small.post(
                "/v1/models/iris:predict",
                content=body,
                headers={"Content-Type": "application/json"},
            ),
            413,
        )

        def chunks() -> Any:  # no Content-Length: counted while receiving
            for _ in range(50):
                yield b"[" * 100

        assert_json_error(
            small.post(
                "/v1/models/iris:predict",
                content=chunks(),
                headers={"Content-Type": "application/json"},
            ),
            413,
        )


def test_batch_over_max_batch_rows_is_422(iris: Any) -> None:
    from tests.unit.serving.conftest import make_client

    for small in make_client(iris, max_batch_rows=2):
        rows = [[7.7, 3.0, 6.1, 2.3]] * 3
        error = assert_json_error(
            small.post("/v1/models/iris:predict", json={"instances": rows}), 422
        )
        assert "max-batch-rows" in error["error"]
        assert (
            small.post("/v1/models/iris:predict", json={"instances": rows[:2]}).status_code == 200
        )


def test_load_shedding_answers_503_with_retry_after(iris: Any) -> None:
    from tests.unit.serving.conftest import make_client

    for shed in make_client(iris, max_in_flight=1):
        app = shed.app
        app.in_flight = 1  # as if one request were being served
        try:
            response = shed.get("/?sepal_length=1")
            assert_json_error(response, 503)
            assert response.headers["retry-after"] == "1"
            assert shed.get("/v2/health/live").status_code == 200
        finally:
            app.in_flight = 0
