"""Bad input against the production server (and nginx in front): each case its exact status, a
JSON body without a traceback, and the server still live after it."""

from __future__ import annotations

import json
import pickle
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabserve.deploy.render import DeployOptions
from tabserve.types import Manifest
from tests.reliability.support import Nginx, register_mixed, start_nginx
from tests.support.models import copy_home
from tests.support.server import Server

pytestmark = pytest.mark.slow

V1 = "/v1/models/iris:predict"
FLOWER = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}
ROW = [7.7, 3.0, 6.1, 2.3]
JSON = {"Content-Type": "application/json"}
MAX_BATCH_ROWS = 100
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class Target:
    server: Server
    nginx: Nginx


@pytest.fixture(scope="module")
def target(
    trained: tuple[Manifest, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    manifest, _, registry = trained
    root = tmp_path_factory.mktemp("bad-input")
    home = copy_home(registry, root / "home")
    register_mixed(home)
    env = {
        "TABSERVE_MAX_BATCH_ROWS": str(MAX_BATCH_ROWS),
        "TABSERVE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    server = Server(home, root / "serve.log", "iris", "mixed", env=env)
    nginx = None
    try:
        server.wait_ready()
        options = DeployOptions(max_body_bytes=MAX_BODY_BYTES, rate_per_second=10_000, burst=10_000)
        nginx = start_nginx(manifest, server.port, root / "nginx", options)
        yield Target(server, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()
        print(server.output()[-2000:])


def assert_clean(response: httpx.Response, status: int) -> Any:
    """The exact status and a JSON body that leaks no traceback, path or version."""
    assert response.status_code == status, (status, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    text = response.text
    for leak in ("Traceback", 'File "', "site-packages", "/work/", "gunicorn/", "uvicorn/"):
        assert leak not in text, text[:300]
    return response.json()


def assert_live(url: str) -> None:
    assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
    lecture = "/?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
    assert httpx.get(url + lecture, timeout=10).content == b'{"prediction":"2"}\n'


def v2(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": inputs}


# Issue 3's validation list: (path, JSON body, status, loc of the first detail or None).
SCHEMA_CASES: list[tuple[str, str, Any, int, list[Any] | None]] = [
    ("missing feature", V1, {"instances": [{k: v for k, v in FLOWER.items() if k != "sepal_width"}]}, 422, ["instances", 0, "sepal_width"]),
    ("unknown feature", V1, {"instances": [{**FLOWER, "colour": 1.0}]}, 422, None),
    ("string for a number", V1, {"instances": [[7.7, "x", 6.1, 2.3]]}, 422, ["instances", 0, "sepal_width"]),
    ("bool for a number", V1, {"instances": [[7.7, True, 6.1, 2.3]]}, 422, ["instances", 0, "sepal_width"]),
    ("object for a number", V1, {"instances": [[7.7, {"a": 1}, 6.1, 2.3]]}, 422, ["instances", 0, "sepal_width"]),
    ("list for a number", V1, {"instances": [[7.7, [3.0], 6.1, 2.3]]}, 422, ["instances", 0, "sepal_width"]),
    ("short row", V1, {"instances": [[7.7, 3.0, 6.1]]}, 422, None),
    ("long row", V1, {"instances": [[*ROW, 1.0]]}, 422, None),
    ("null where not nullable", V1, {"instances": [[7.7, None, 6.1, 2.3]]}, 422, ["instances", 0, "sepal_width"]),
    ("FP32 value outside float32", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [7.7, 1e39, 6.1, 2.3]}]), 422, None),
    ("INT8 value outside int8", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 4], "datatype": "INT8", "data": [7.7, 300, 6.1, 2.3]}]), 422, None),
    ("empty batch", V1, {"instances": []}, 422, None),
    ("batch over --max-batch-rows", V1, {"instances": [ROW] * (MAX_BATCH_ROWS + 1)}, 422, None),
    ("unseen category", "/v1/models/mixed:predict", {"instances": [{"age": 30, "city": "rome"}]}, 422, ["instances", 0, "city"]),
    ("null category", "/v1/models/mixed:predict", {"instances": [{"age": 30, "city": None}]}, 422, ["instances", 0, "city"]),
    ("V2 wrong shape", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]), 422, None),
    # A tensor at odds with its own shape is malformed (400), as Triton answers it.
    ("V2 tensor disagreeing with its shape", "/v2/models/iris/infer", v2([{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROW}]), 400, None),
    ("V2 NaN in a tensor", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [7.7, "NaN", 6.1, 2.3]}]), 422, None),
    ("V2 infinity in a tensor", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [7.7, "Infinity", 6.1, 2.3]}]), 422, None),
    ("V1 unknown top-level field", V1, {"instances": [ROW], "extra": 1}, 422, ["extra"]),
    ("V2 unknown top-level field", "/v2/models/iris/infer", {**v2([{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]), "extra": 1}, 422, ["extra"]),
    ("V2 datatype not a string", "/v2/models/iris/infer", v2([{"name": "input", "shape": [1, 4], "datatype": {}, "data": ROW}]), 400, ["inputs", 0, "datatype"]),
    ("MLflow unknown top-level field", "/invocations", {"instances": [ROW], "extra": 1}, 422, ["extra"]),
    ("MLflow missing column", "/invocations", {"dataframe_split": {"columns": ["sepal_length"], "data": [[1.0]]}}, 422, None),
    ("MLflow records wrong type", "/invocations", {"dataframe_records": [{**FLOWER, "petal_width": "wide"}]}, 422, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "loc"),
    [case[1:] for case in SCHEMA_CASES],
    ids=[case[0] for case in SCHEMA_CASES],
)
def test_schema_violations(
    target: Target, path: str, body: Any, status: int, loc: list[Any] | None
) -> None:
    url = target.server.url
    response = httpx.post(url + path, content=json.dumps(body).encode(), headers=JSON, timeout=30)
    error = assert_clean(response, status)
    assert error["error"] and error["details"], error
    if loc is not None:
        assert error["details"][0]["loc"] == loc
    assert_live(url)


def test_nullable_feature_accepts_null(target: Target) -> None:
    response = httpx.post(
        target.server.url + "/v1/models/mixed:predict",
        json={"instances": [{"age": None, "city": "lyon"}]},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["predictions"][0] in ("no", "yes")


LECTURE_CASES = [
    ("/?sepal_length=7.7&petal_length=6.1&petal_width=2.3", b"\"argument(s) missing: ['sepal_width']\"\n"),
    ("/?sepal_length=7.7&sepal_width=3.0&petal_length=x&petal_width=2.3", b"\"argument(s) not float: ['petal_length']\"\n"),
    ("/?sepal_length=7.7&sepal_width=3.0&petal_length=nan&petal_width=2.3", b"\"argument(s) not float: ['petal_length']\"\n"),
    ("/?sepal_length=7.7&sepal_width=3.0&petal_length=-inf&petal_width=2.3", b"\"argument(s) not float: ['petal_length']\"\n"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "body"), LECTURE_CASES)
def test_the_lecture_contract_keeps_its_422_strings(
    target: Target, query: str, body: bytes
) -> None:
    response = httpx.get(target.server.url + query, timeout=10)
    assert response.status_code == 422
    assert response.content == body
    assert_live(target.server.url)


MALFORMED = [
    ("truncated JSON", b'{"instances": [[7.7, 3.0, 6.1'),
    ("duplicate keys", b'{"instances": [[7.7, 3.0, 6.1, 2.3]], "instances": []}'),
    ("invalid UTF-8", b'{"instances": [["\xff\xfe", 3.0, 6.1, 2.3]]}'),
    ("5,000-digit integer", b'{"instances": [[1' + b"0" * 5000 + b", 3.0, 6.1, 2.3]]}"),
    ("65 levels", b'{"instances": ' + b"[" * 64 + b"]" * 64 + b"}"),
    ("empty body", b""),
    ("not JSON", b"sepal_length=7.7"),
    ("NaN literal", b'{"instances": [[NaN, 3.0, 6.1, 2.3]]}'),
    # A number JSON's parser cannot hold as float64 is malformed JSON, as a too-long integer is.
    ("number beyond float64", b'{"instances": [[7.7, 1e400, 6.1, 2.3]]}'),
]


@pytest.mark.parametrize("body", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_are_400(target: Target, body: bytes) -> None:
    response = httpx.post(target.server.url + V1, content=body, headers=JSON, timeout=30)
    assert_clean(response, 400)
    assert_live(target.server.url)


def test_200000_deep_nesting_is_400_fast(target: Target) -> None:
    started = time.monotonic()
    for body in (b"[" * 200_000, b'{"instances":' + b"[" * 200_000 + b"]" * 200_000 + b"}"):
        response = httpx.post(target.server.url + V1, content=body, headers=JSON, timeout=30)
        assert_clean(response, 400)
    seconds = time.monotonic() - started
    print(f"two 200,000-deep bodies answered 400 in {seconds:.3f}s")
    assert seconds < 10  # liveness bound: a recursive parser would crash or crawl
    assert_live(target.server.url)


def test_a_pickle_body_is_415_and_never_unpickled(target: Target, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    body = pickle.dumps(Exploit())
    for path in (V1, "/v2/models/iris/infer", "/invocations"):
        response = httpx.post(
            target.server.url + path,
            content=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert_clean(response, 415)
    assert not marker.exists()
    assert_live(target.server.url)


@pytest.mark.parametrize(
    ("content_type", "path"),
    [
        ("text/plain", V1),
        ("application/x-www-form-urlencoded", V1),
        ("application/x-python-pickle", "/invocations"),
        ("multipart/form-data; boundary=x", "/invocations"),
    ],
)
def test_a_wrong_content_type_is_415(target: Target, content_type: str, path: str) -> None:
    response = httpx.post(
        target.server.url + path,
        content=json.dumps({"instances": [ROW]}).encode(),
        headers={"Content-Type": content_type},
        timeout=10,
    )
    assert_clean(response, 415)


def test_unknown_model_404_and_wrong_method_405(target: Target) -> None:
    url = target.server.url
    assert_clean(httpx.post(f"{url}/v1/models/nope:predict", json={"instances": [ROW]}), 404)
    assert_clean(httpx.get(f"{url}/v2/models/nope/ready"), 404)
    assert_clean(httpx.get(f"{url}/v2/models/iris/versions/99"), 404)
    assert_clean(httpx.delete(f"{url}{V1}"), 405)
    get_predict = httpx.get(f"{url}{V1}")  # matches GET /v1/models/{name} too: still 405
    assert_clean(get_predict, 405)
    assert get_predict.headers["allow"] == "POST"
    assert_clean(httpx.put(f"{url}/v2/models/iris/infer", json={}), 405)
    assert_clean(httpx.post(f"{url}/", json={}), 405)


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read the answer until the peer closes or stops talking."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                data = b"".join(chunks)
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep and b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def split(answer: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


def test_a_body_over_the_limit_is_413_before_it_is_read(target: Target) -> None:
    # Only the headers and a little of the body are sent: the answer must not wait for the rest.
    request = (
        f"POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES * 50}\r\n\r\n"
    ).encode() + b"[" * 1000
    for port in (target.server.port, target.nginx.port):
        status, head, body = split(raw(port, request))
        assert status == 413, (port, head)
        assert b"application/json" in head
        assert json.loads(body)["error"]
    assert_live(target.server.url)


def test_oversized_headers_and_uri_through_nginx_answer_json(target: Target) -> None:
    nginx = target.nginx
    big_header = httpx.get(f"{nginx.url}/v2/health/live", headers={"X-Big": "a" * 20_000})
    # nginx answers 400 for headers past large_client_header_buffers; its error_page says why.
    assert assert_clean(big_header, 400) == {"error": "request headers too large"}
    many = {f"X-H{i}": "b" * 4000 for i in range(16)}
    too_many = httpx.get(f"{nginx.url}/v2/health/live", headers=many)
    assert assert_clean(too_many, 400) == {"error": "request headers too large"}
    long_uri = httpx.get(f"{nginx.url}/?sepal_length={'1' * 20_000}")
    assert assert_clean(long_uri, 414) == {"error": "request URI too long"}
    status, head, body = split(raw(nginx.port, b"NOT A REQUEST LINE\r\n\r\n"))
    assert (status, json.loads(body)) == (400, {"error": "bad request"}), head
    assert b"application/json" in head
    assert_live(nginx.url)


SMUGGLING = [
    (
        "Content-Length and Transfer-Encoding",
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two different Content-Lengths",
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nContent-Length: 40\r\n\r\n[[]]",
    ),
    (
        "an unknown Transfer-Encoding",
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: gzip, chunked2\r\n\r\n",
    ),
]


@pytest.mark.parametrize("request_bytes", [s[1] for s in SMUGGLING], ids=[s[0] for s in SMUGGLING])
def test_framing_conflicts_are_refused_by_nginx_in_json_and_by_the_server(
    target: Target, request_bytes: bytes
) -> None:
    status, head, body = split(raw(target.nginx.port, request_bytes))
    assert status in (400, 501), head  # nginx: 400, or 501 for a coding it does not know
    if status == 400:
        assert b"application/json" in head
        assert json.loads(body) == {"error": "bad request"}
    # The production server refuses the same bytes before the app runs: no 2xx, no 5xx.
    answer = raw(target.server.port, request_bytes)
    if answer:  # httptools may also just close the connection
        direct, head, _ = split(answer)
        assert 400 <= direct < 500, head
    assert_live(target.server.url)
    assert_live(target.nginx.url)
