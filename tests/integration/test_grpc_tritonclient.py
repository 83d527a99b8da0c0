"""The official tritonclient.grpc client, used exactly as its documentation shows, against `tabserve serve --grpc-port`.

The production server runs with 2 workers; both bind the gRPC port (SO_REUSEPORT) beside
HTTP. tritonclient sends inputs in `raw_input_contents` and reads `raw_output_contents`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from sklearn.datasets import load_iris
from tests.support.models import register_iris
from tests.support.net import free_port, wait_until
from tests.support.server import Server
from tritonclient.utils import InferenceServerException

from tabserve.types import Manifest

FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's example: class 2 (virginica)

pytestmark = pytest.mark.slow


class Endpoints(NamedTuple):
    grpc_url: str
    http_url: str
    manifest: Manifest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """`tabserve serve iris --workers 2 --grpc-port P` on free 127.0.0.1 ports."""
    tmp_path = tmp_path_factory.mktemp("grpc")
    home = tmp_path / "home"
    manifest = register_iris(home)
    grpc_port = free_port()
    grpc_url = f"127.0.0.1:{grpc_port}"
    running = Server(
        home,
        tmp_path / "serve.log",
        *("iris", "--grpc-port", str(grpc_port)),
        env={"TABSERVE_PREDICTION_LOG": "false"},
    )

    def grpc_ready() -> bool:
        client = grpcclient.InferenceServerClient(url=grpc_url)
        try:
            return bool(client.is_server_ready())
        except InferenceServerException:
            return False
        finally:
            client.close()

    try:
        running.wait_ready()
        wait_until(grpc_ready, 60, "tabserve serve ready over gRPC")
        yield Endpoints(grpc_url, running.url, manifest)
    finally:
        code = running.stop()
    assert code == 0, running.output()


def test_infer_returns_class_2_for_the_lectures_flower(server: Endpoints) -> None:
    client = grpcclient.InferenceServerClient(url=server.grpc_url)
    inputs = [grpcclient.InferInput("input", [1, 4], "FP32")]
    inputs[0].set_data_from_numpy(np.array([FLOWER], dtype=np.float32))
    outputs = [
        grpcclient.InferRequestedOutput("predict"),
        grpcclient.InferRequestedOutput("predict_proba"),
    ]
    result = client.infer("iris", inputs, outputs=outputs, request_id="flower-1")
    assert result.as_numpy("predict").tolist() == [2]
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (1, 3)
    assert proba.argmax() == 2
    response = result.get_response()
    assert response.id == "flower-1"
    assert response.model_version == str(server.manifest.version)
    client.close()


def test_same_answer_as_rest_v2(server: Endpoints) -> None:
    X = load_iris().data
    client = grpcclient.InferenceServerClient(url=server.grpc_url)
    inputs = [grpcclient.InferInput("input", list(X.shape), "FP64")]
    inputs[0].set_data_from_numpy(X.astype(np.float64))
    labels = client.infer("iris", inputs).as_numpy("predict").tolist()
    client.close()
    body = {
        "inputs": [
            {"name": "input", "shape": list(X.shape), "datatype": "FP64", "data": X.tolist()}
        ]
    }
    rest = httpx.post(f"{server.http_url}/v2/models/iris/infer", json=body, timeout=10).json()
    assert labels == rest["outputs"][0]["data"]


def test_health_and_metadata(server: Endpoints) -> None:
    client = grpcclient.InferenceServerClient(url=server.grpc_url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.get_server_metadata().name == "tabserve"
    meta = client.get_model_metadata("iris")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input", "FP64", [-1, 4])
    ]
    assert [t.name for t in meta.outputs] == ["predict", "predict_proba"]
    client.close()


def test_errors_carry_grpc_status_codes(server: Endpoints) -> None:
    client = grpcclient.InferenceServerClient(url=server.grpc_url)
    inputs = [grpcclient.InferInput("input", [1, 3], "FP32")]
    inputs[0].set_data_from_numpy(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    with pytest.raises(InferenceServerException) as wrong_shape:
        client.infer("iris", inputs)
    assert wrong_shape.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "does not fit the model" in wrong_shape.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", inputs)
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    client.close()


def test_fresh_connections_all_answer(server: Endpoints) -> None:
    # Each client is a new connection; SO_REUSEPORT spreads them over the two workers.
    for _ in range(20):
        client = grpcclient.InferenceServerClient(url=server.grpc_url)
        inputs = [grpcclient.InferInput("input", [1, 4], "FP32")]
        inputs[0].set_data_from_numpy(np.array([FLOWER], dtype=np.float32))
        assert client.infer("iris", inputs).as_numpy("predict").tolist() == [2]
        client.close()
