"""Load shedding and request timeouts: past the per-worker in-flight bound a request answers 503
with `Retry-After` at once while health still answers 200; a predict running past
--request-timeout answers 504 and the worker serves the next request.

In process, a model made slow on purpose holds requests in flight; against the real server
(`serve --max-in-flight`), POSTs whose bodies are held back on raw sockets do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tabserve.serving.app import create_app
from tabserve.serving.inference import load_runtime
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction
from tests.reliability.held import Held, in_flight
from tests.support.models import copy_home
from tests.support.server import LECTURE, Server

FLOWER = [7.7, 3.0, 6.1, 2.3]
TWO_ROWS = {"instances": [FLOWER, FLOWER]}  # slow on purpose in these tests
ONE_ROW = {"instances": [FLOWER]}
HEALTH = ["/v2/health/live", "/v2/health/ready", "/ping", "/health", "/metrics"]


class SlowRuntime:
    """The trained runtime, but a call with several rows first waits for `gate` (or sleeps)."""

    def __init__(self, runtime: Any, gate: threading.Event | None, sleep: float = 0.0) -> None:
        self.runtime = runtime
        self.kind = runtime.kind
        self.gate = gate
        self.sleep = sleep
        self.slow_calls = 0

    def predict(self, rows: np.ndarray) -> Prediction:
        """Predict; slow (gated or sleeping) for calls of more than one row."""
        if len(rows) > 1:
            self.slow_calls += 1
            if self.gate is not None:
                self.gate.wait(30)  # bounded: a broken test fails, it does not hang
            time.sleep(self.sleep)
        return self.runtime.predict(rows)

    def close(self) -> None:
        """Close the wrapped runtime."""
        self.runtime.close()


def slow_app(trained: tuple[Manifest, Path, Path], slow: SlowRuntime, **settings: Any) -> Any:
    """The app over the slow runtime; batches of one row, so 2-row calls always leave the loop."""
    manifest = trained[0]
    conf = Settings(prediction_log=False, batch_max_rows=1, **settings)
    return create_app(conf, models=[(manifest, slow)])


def runtime_of(trained: tuple[Manifest, Path, Path]) -> Any:
    manifest, artifact, _ = trained
    return load_runtime(artifact, manifest, threads=1, settings=Settings())


def test_past_the_in_flight_bound_503_with_retry_after_fast_health_still_200(
    trained: tuple[Manifest, Path, Path],
) -> None:
    gate = threading.Event()
    slow = SlowRuntime(runtime_of(trained), gate)
    app = slow_app(trained, slow, max_in_flight=2)
    path = f"/v1/models/{trained[0].name}:predict"

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            held = [asyncio.ensure_future(c.post(path, json=TWO_ROWS)) for _ in range(2)]
            deadline = time.monotonic() + 30
            while app.in_flight < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert app.in_flight == 2
            started = time.monotonic()
            shed = [await c.post(path, json=ONE_ROW) for _ in range(20)]
            shed_seconds = time.monotonic() - started
            health = {p: (await c.get(p)).status_code for p in HEALTH}
            gate.set()
            answered = [await h for h in held]
            after = await c.post(path, json=ONE_ROW)
            return {"shed": shed, "seconds": shed_seconds, "health": health,
                    "held": answered, "after": after}  # fmt: skip

    try:
        seen = asyncio.run(scenario())
    finally:
        gate.set()
        slow.close()
    shed = seen["shed"]
    print(
        f"held=2 shed={len(shed)} statuses={sorted({r.status_code for r in shed})} "
        f"shed_seconds={seen['seconds']:.3f} health={seen['health']} "
        f"held_after={[r.status_code for r in seen['held']]} in_flight_after={app.in_flight}"
    )
    for response in shed:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "limit of 2 requests in flight" in response.json()["error"]
    assert seen["seconds"] < 10  # liveness: shedding never waits for the held requests
    assert set(seen["health"].values()) == {200}
    assert [r.status_code for r in seen["held"]] == [200, 200]
    assert seen["after"].status_code == 200
    assert app.in_flight == 0


def test_a_predict_past_the_request_timeout_is_504_and_the_worker_serves_on(
    trained: tuple[Manifest, Path, Path],
) -> None:
    slow = SlowRuntime(runtime_of(trained), None, sleep=1.5)
    app = slow_app(trained, slow, request_timeout=0.3)
    path = f"/v1/models/{trained[0].name}:predict"

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            started = time.monotonic()
            slow_call = asyncio.ensure_future(c.post(path, json=TWO_ROWS))
            await asyncio.sleep(0.05)
            health = {p: (await c.get(p)).status_code for p in HEALTH}
            timed_out = await slow_call
            seconds = time.monotonic() - started
            answers = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the abandoned predict still holds the thread
                answers.append(await c.post(path, json=ONE_ROW))
                if answers[-1].status_code == 200:
                    break
                await asyncio.sleep(0.1)
            return {"timed_out": timed_out, "seconds": seconds, "health": health,
                    "answers": answers}  # fmt: skip

    try:
        seen = asyncio.run(scenario())
    finally:
        slow.close()
    timed_out = seen["timed_out"]
    print(
        f"slow={timed_out.status_code} after {seen['seconds']:.2f}s health={seen['health']} "
        f"then={[r.status_code for r in seen['answers']]} in_flight_after={app.in_flight}"
    )
    assert timed_out.status_code == 504
    assert "--request-timeout" in timed_out.json()["error"]
    assert "Traceback" not in timed_out.text
    assert seen["seconds"] < 1.5  # answered at the timeout, not when the predict ended
    assert set(seen["health"].values()) == {200}
    assert seen["answers"][-1].status_code == 200
    assert {r.status_code for r in seen["answers"]} <= {200, 504}
    assert app.in_flight == 0


@pytest.mark.slow
def test_the_real_server_sheds_past_max_in_flight_and_health_answers(
    trained: tuple[Manifest, Path, Path], tmp_path: Path
) -> None:
    manifest, _, registry = trained
    server = Server(
        copy_home(registry, tmp_path / "home"), tmp_path / "serve.log", "--max-in-flight", "2"
    ).wait_ready()
    holds: list[Held] = []
    try:
        base = in_flight(server.url)
        path = f"/v1/models/{manifest.name}:predict"
        deadline = time.monotonic() + 60
        # Hold bodies back until both workers are at their bound (2 each): the kernel spreads
        # connections over the workers, so a few more may land on a full one (and get 503).
        while in_flight(server.url) < base + 4 and time.monotonic() < deadline:
            holds.append(Held(server.port, path, ONE_ROW))
            time.sleep(0.1)
        assert in_flight(server.url) >= base + 4, "both workers at their bound"
        latencies, statuses, retry_after = [], [], set()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(20):
                started = time.monotonic()
                answer = client.get(LECTURE, headers={"connection": "close"})
                latencies.append(time.monotonic() - started)
                statuses.append(answer.status_code)
                retry_after.add(answer.headers.get("retry-after"))
            health = {p: client.get(p).status_code for p in HEALTH}
            finished = [h.finish()[0] for h in holds]
            after = client.get(LECTURE).status_code
        print(
            f"holds={len(holds)} probes={statuses} retry_after={retry_after} "
            f"slowest_503={max(latencies) * 1000:.1f}ms health={health} held_answers={finished} "
            f"after={after} rss={server.worker_rss() >> 20}MiB"
        )
        assert statuses == [503] * 20 and retry_after == {"1"}
        assert max(latencies) < 5  # liveness: answered without waiting for the held ones
        assert set(health.values()) == {200}
        assert finished.count(200) == 4 and set(finished) <= {200, 503}
        assert after == 200
    finally:
        for h in holds:
            h.close()
        server.stop()
