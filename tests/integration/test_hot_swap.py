"""Hot swap under load: `tabserve models promote` while `tabserve serve iris` (2 workers) answers.

The server serves bare `iris` (= iris@production) and polls the registry every 0.3 s. A
promote from another process during a bounded load loop switches every worker to the new
version with no failed request; a tampered version promoted afterwards is refused by every
worker (the old one keeps serving) and counted as a swap failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.support.models import promote, register_iris
from tests.support.net import wait_until
from tests.support.server import LECTURE, Server, metric, serve_promoted

pytestmark = pytest.mark.slow

REQUESTS = 6000  # at least 5,000, as the issue asks
THREADS = 6
V2_BODY = {
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [7.7, 3.0, 6.1, 2.3]}]
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tabserve serve iris --registry-poll 0.3` with iris:1 in production and iris:2 ready."""
    tmp = tmp_path_factory.mktemp("hotswap")
    env = {"TABSERVE_PREDICTION_LOG": "false"}
    with serve_promoted(tmp, 2, "--registry-poll", "0.3", env=env) as served:
        yield served


def _load_loop(url: str, results: list[tuple[int, int, str]], stop_at: float) -> None:
    """Requests on one keep-alive connection: (sequence, status, served version) per request."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while len(results) < REQUESTS and time.monotonic() < stop_at:
            n = len(results)
            try:
                if n % 2:
                    response = client.post("/v2/models/iris/infer", json=V2_BODY)
                    body_version = response.json().get("model_version", "?")
                else:
                    response = client.get(LECTURE)
                    body_version = None
            except httpx.TransportError:
                results.append((n, 0, "transport error"))
                continue
            version = response.headers.get("x-model-version", "?")
            if body_version is not None and body_version != version:
                version = f"header {version} != body {body_version}"
            results.append((n, response.status_code, version))


def test_promote_during_load_switches_every_worker_with_no_failure(server: Server) -> None:
    results: list[tuple[int, int, str]] = []  # list.append is atomic: threads share it
    stop_at = time.monotonic() + 120  # liveness bound, far above the few seconds it takes
    threads = [
        threading.Thread(target=_load_loop, args=(server.url, results, stop_at))
        for _ in range(THREADS)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) >= REQUESTS // 4, 60, "a quarter of the requests")
    promote(server.home, "iris:2")
    promoted_at = len(results)
    for t in threads:
        t.join(timeout=130)
    assert len(results) >= REQUESTS
    failed = [r for r in results if r[1] != 200]
    assert failed == []
    versions = [r[2] for r in sorted(results)]
    assert set(versions) == {"1", "2"}, set(versions)
    assert set(versions[:promoted_at]) == {"1"}
    assert set(versions[-500:]) == {"2"}  # every worker swapped well before the loop ended
    samples = server.metrics()
    assert metric(samples, "tabserve_model_swaps_total", model="iris") == 2  # one per worker
    assert metric(samples, "tabserve_model_swap_failures_total", model="iris") == 0


def test_a_tampered_version_promoted_is_refused_and_the_old_keeps_serving(
    server: Server,
) -> None:
    wait_until(
        lambda: all(
            server.client.get(LECTURE).headers.get("x-model-version") == "2" for _ in range(10)
        ),
        30,
        "iris:2 serving",
    )
    broken = register_iris(server.home)
    model = server.home / "models" / "iris" / str(broken.version) / "model.skops"
    model.write_bytes(model.read_bytes() + b"tampered")
    promote(server.home, f"iris:{broken.version}")
    wait_until(
        lambda: metric(server.metrics(), "tabserve_model_swap_failures_total", model="iris") >= 2,
        30,
        "both workers refusing the tampered version",
    )
    time.sleep(1.0)  # several more polls: a refused version is not retried every poll
    for _ in range(40):
        response = server.client.get(LECTURE)
        assert response.status_code == 200
        assert response.headers["x-model-version"] == "2"
    samples = server.metrics()
    assert metric(samples, "tabserve_model_swap_failures_total", model="iris") == 2
    assert "not swapped in" in server.output()
