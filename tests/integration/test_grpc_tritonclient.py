"""The official tritonclient.grpc client, used exactly as its documentation shows, against `tabserve serve --grpc-port`.

The production server runs with 2 workers; both bind the gRPC port (SO_REUSEPORT) beside
HTTP. tritonclient sends inputs in `raw_input_contents` and reads `raw_output_contents`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
import pytest
import sklearn
import tritonclient.grpc as grpcclient
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.support.net import free_port, wait_until
from tritonclient.utils import InferenceServerException

from tabserve.artifacts import store
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
from tabserve.types import Feature, Manifest, RuntimeInfo

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's example: class 2 (virginica)

pytestmark = pytest.mark.slow


class Server(NamedTuple):
    grpc_url: str
    http_url: str
    manifest: Manifest


def _register_iris(home: Path) -> Manifest:
    """The lecture's pipeline (StandardScaler + GradientBoosting) in a fresh registry."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("clf", GradientBoostingClassifier(random_state=0))]
    )
    pipeline.fit(X, y)
    features = [
        Feature(
            name=n,
            column=n,
            kind="number",
            dtype="float64",
            min=float(X[n].min()),
            max=float(X[n].max()),
            mean=float(X[n].mean()),
            std=float(X[n].std()),
        )
        for n in NAMES
    ]
    manifest = Manifest(
        name="iris",
        version=0,
        created_at="2026-11-24T12:00:00Z",
        task="classification",
        target="target",
        features=features,
        classes=[0, 1, 2],
        data_fingerprint="0" * 64,
        source="iris",
        estimator="sklearn.ensemble.GradientBoostingClassifier",
        environment={"python": sys.version.split()[0], "scikit-learn": sklearn.__version__},
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )
    staged = store.stage(manifest=manifest, pipeline=pipeline, files={}, home=home)
    with open_registry(Settings(home=home)) as registry:
        return registry.publish(staged)


def _ready(http_url: str) -> bool:
    try:
        return httpx.get(f"{http_url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tabserve serve iris --workers 2 --grpc-port P` on free 127.0.0.1 ports."""
    tmp_path = tmp_path_factory.mktemp("grpc")
    home = tmp_path / "home"
    manifest = _register_iris(home)
    port, grpc_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tabserve", "serve", "iris"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
            *("--grpc-port", str(grpc_port)),
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
            "TABSERVE_HOME": str(home),
            "TABSERVE_PREDICTION_LOG": "false",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    http_url = f"http://127.0.0.1:{port}"
    grpc_url = f"127.0.0.1:{grpc_port}"

    def ready() -> bool:
        if process.poll() is not None:
            log.flush()
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"tabserve serve exited with {process.returncode}:\n{output}")
        if not _ready(http_url):
            return False
        client = grpcclient.InferenceServerClient(url=grpc_url)
        try:
            return bool(client.is_server_ready())
        except InferenceServerException:
            return False
        finally:
            client.close()

    try:
        wait_until(ready, 60, "tabserve serve ready over HTTP and gRPC")
        yield Server(grpc_url, http_url, manifest)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == 0, log_path.read_text(errors="replace")


def test_infer_returns_class_2_for_the_lectures_flower(server: Server) -> None:
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


def test_same_answer_as_rest_v2(server: Server) -> None:
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


def test_health_and_metadata(server: Server) -> None:
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


def test_errors_carry_grpc_status_codes(server: Server) -> None:
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


def test_fresh_connections_all_answer(server: Server) -> None:
    # Each client is a new connection; SO_REUSEPORT spreads them over the two workers.
    for _ in range(20):
        client = grpcclient.InferenceServerClient(url=server.grpc_url)
        inputs = [grpcclient.InferInput("input", [1, 4], "FP32")]
        inputs[0].set_data_from_numpy(np.array([FLOWER], dtype=np.float32))
        assert client.infer("iris", inputs).as_numpy("predict").tolist() == [2]
        client.close()
