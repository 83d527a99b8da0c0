"""The official tritonclient[http] client, used exactly as its documentation shows, against `tabserve serve`.

Its defaults send inputs as binary tensor data, ask for binary outputs and send no
Content-Type; it may also gzip or deflate the request body.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import sklearn
import tritonclient.http as httpclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.support.net import free_port, wait_until

from tabserve.artifacts import store
from tabserve.artifacts.registry import open_registry
from tabserve.settings import Settings
from tabserve.types import Feature, Manifest, RuntimeInfo

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's example: class 2 (virginica)

pytestmark = pytest.mark.slow


def _register_iris(home: Path) -> Manifest:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
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
        estimator="sklearn.linear_model.LogisticRegression",
        environment={"python": sys.version.split()[0], "scikit-learn": sklearn.__version__},
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )
    staged = store.stage(manifest=manifest, pipeline=pipeline, files={}, home=home)
    with open_registry(Settings(home=home)) as registry:
        return registry.publish(staged)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tabserve serve iris` with 2 workers on a free 127.0.0.1 port; yields host:port."""
    tmp_path = tmp_path_factory.mktemp("tritonclient")
    tabserve_home = tmp_path / "home"
    _register_iris(tabserve_home)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tabserve", "serve", "iris"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
            "TABSERVE_HOME": str(tabserve_home),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            log.flush()
            output = (tmp_path / "serve.log").read_text(errors="replace")
            raise RuntimeError(f"tabserve serve exited with {process.returncode}:\n{output}")
        return _ready(url)

    try:
        wait_until(ready, 60, "tabserve serve ready")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_tritonclient_with_its_defaults(server: str) -> None:
    client = httpclient.InferenceServerClient(url=server)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        metadata = client.get_model_metadata("iris")
        assert metadata["name"] == "iris"

        # As the client's documentation shows: binary inputs and binary outputs by default.
        inputs = [httpclient.InferInput("input", [1, 4], "FP32")]
        inputs[0].set_data_from_numpy(np.array([FLOWER], dtype=np.float32))
        outputs = [
            httpclient.InferRequestedOutput("predict"),
            httpclient.InferRequestedOutput("predict_proba"),
        ]
        result = client.infer(model_name="iris", inputs=inputs, outputs=outputs, request_id="r1")
        assert result.as_numpy("predict").tolist() == [2]
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (1, 3)
        assert proba.sum() == pytest.approx(1.0)
        assert result.get_response()["id"] == "r1"

        # No outputs named: the client asks for every output in binary.
        result = client.infer("iris", inputs)
        assert result.as_numpy("predict").tolist() == [2]
        assert result.as_numpy("predict_proba").sum() == pytest.approx(1.0)
    finally:
        client.close()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_and_a_whole_batch(server: str, algorithm: str) -> None:
    X, y = load_iris(return_X_y=True)
    client = httpclient.InferenceServerClient(url=server)
    try:
        inputs = [httpclient.InferInput("input", list(X.shape), "FP64")]
        inputs[0].set_data_from_numpy(X.astype(np.float64))
        result = client.infer(
            "iris",
            inputs,
            outputs=[
                httpclient.InferRequestedOutput("predict"),
                httpclient.InferRequestedOutput("predict_proba"),
            ],
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,
        )
        predict = result.as_numpy("predict")
        proba = result.as_numpy("predict_proba")
        assert predict.shape == (150,)
        assert (predict == y).mean() > 0.9
        assert proba.shape == (150, 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        # JSON inputs and JSON outputs work through the same client too.
        one = [httpclient.InferInput("input", [1, 4], "FP64")]
        one[0].set_data_from_numpy(np.array([FLOWER]), binary_data=False)
        result = client.infer(
            "iris",
            one,
            outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)],
            request_compression_algorithm=algorithm,
        )
        assert result.as_numpy("predict").tolist() == [2]
        assert result.get_output("predict")["data"] == [2]
    finally:
        client.close()
