"""The official tritonclient[http] client, used exactly as its documentation shows, against `tabserve serve`.

Its defaults send inputs as binary tensor data, ask for binary outputs and send no
Content-Type; it may also gzip or deflate the request body.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.support.models import register_iris
from tests.support.server import Server

FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's example: class 2 (virginica)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tabserve serve iris` (StandardScaler + LogisticRegression) with 2 workers; yields host:port."""
    tmp_path = tmp_path_factory.mktemp("tritonclient")
    home = tmp_path / "home"
    register_iris(home, LogisticRegression(max_iter=500))
    running = Server(home, tmp_path / "serve.log", "iris")
    try:
        running.wait_ready()
        yield f"127.0.0.1:{running.port}"
    finally:
        running.stop()


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
