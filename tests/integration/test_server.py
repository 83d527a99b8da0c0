"""`tabserve serve` as users run it: granian with 2 worker processes on a free 127.0.0.1 port.

One server per module; the lecture's exact request compared byte for byte, each protocol,
readiness, a worker killed with SIGKILL during requests, and SIGTERM draining to exit 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.models import register_iris
from tests.support.net import free_port, wait_until
from tests.support.server import LECTURE, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve") / "home"
    register_iris(folder)
    return folder


@pytest.fixture(scope="module")
def server(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(home, tmp_path_factory.mktemp("log") / "serve.log", "iris")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def raw_get(port: int, target: str) -> bytes:
    """The exact bytes a curl-style client receives for a GET (HTTP/1.1, connection close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/8.5.0\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_lecture_request_byte_for_byte(server: Server) -> None:
    raw = raw_get(server.port, LECTURE)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    assert body == b'{"prediction":"2"}\n'
    assert headers[b"content-type"] == b"application/json; charset=UTF-8"
    assert headers[b"content-length"] == b"19"
    assert headers[b"x-model-version"] == b"1"
    assert headers[b"x-request-id"]
    # granian always names itself (it has no switch for it yet); never a version on the wire
    assert not any(ch.isdigit() for ch in headers.get(b"server", b"").decode())
    missing = raw_get(server.port, "/?sepal_length=7.7&petal_length=6.1&petal_width=2.3")
    assert missing.split(b"\r\n")[0] == b"HTTP/1.1 422 Unprocessable Entity"
    assert missing.endswith(b"\r\n\r\n\"argument(s) missing: ['sepal_width']\"\n")


def test_every_protocol_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        flower = [7.7, 3.0, 6.1, 2.3]
        assert client.post("/v1/models/iris:predict", json={"instances": [flower]}).json() == {
            "predictions": [2]
        }
        v2 = client.post(
            "/v2/models/iris/infer",
            json={
                "id": "a",
                "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": flower}],
            },
        ).json()
        assert v2["id"] == "a" and v2["outputs"][0]["data"] == [2]
        assert client.post("/invocations", json={"instances": [flower]}).json() == {
            "predictions": [2]
        }
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/models/iris/ready").status_code == 200
        assert client.get("/ping").status_code == 200
        bad = client.post("/v1/models/iris:predict", json={"instances": [[1, "x", 1, 1]]})
        assert bad.status_code == 422 and bad.json()["details"][0]["loc"] == [
            "instances",
            0,
            "sepal_width",
        ]
        metrics = client.get("/metrics").text
        assert "tabserve_http_requests_total" in metrics


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(server: Server) -> None:
    wait_until(lambda: len(server.worker_pids()) == 2, 30, "two workers")
    victim = server.worker_pids()[0]
    failures = 0
    answered = 0
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(400):
            if i == 50:
                os.kill(victim, signal.SIGKILL)
            try:
                response = client.get(LECTURE)
                # a replacement worker accepts connections only once its model is loaded
                answered += response.status_code == 200
            except httpx.TransportError:
                failures += 1  # only requests in flight on the killed worker may fail
            if time.monotonic() > deadline:
                break
    assert failures <= 5, failures
    wait_until(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
        30,
        "replacement",
    )
    wait_until(lambda: all(server.ready() for _ in range(10)), 60, "both workers ready again")
    assert httpx.get(server.url + LECTURE, timeout=10).content == b'{"prediction":"2"}\n'
    assert answered > 300


def test_sigterm_drains_and_exits_zero(home: Path, tmp_path: Path) -> None:
    running = Server(home, tmp_path / "serve.log", "iris")
    try:
        running.wait_ready()
        assert httpx.get(running.url + LECTURE, timeout=10).status_code == 200
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=30) == 0, running.output()
    finally:
        running.stop()


def test_a_tampered_artifact_fails_serve_before_it_forks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register_iris(home)
    model = next((home / "models" / "iris").glob("*/model.skops"))
    model.write_bytes(model.read_bytes() + b"x")
    result = subprocess.run(
        [sys.executable, "-m", "tabserve", "serve", "iris", "--port", str(free_port())],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
            "TABSERVE_HOME": str(home),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "sha256" in result.stderr + result.stdout
