"""Model lifecycle in one worker: per-version swap, registry poller, shadow traffic, admin reload."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from tabserve.artifacts import store
from tabserve.artifacts.registry import Registry, open_registry
from tabserve.errors import ArtifactError, OverloadedError
from tabserve.runtime.sklearn import SklearnRuntime
from tabserve.serving import metrics, reload
from tabserve.serving.app import create_app
from tabserve.serving.inference import ModelService
from tabserve.serving.lifecycle import Poller, ShadowTraffic, disagreements
from tabserve.serving.reload import ReloadBoard
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction

from .conftest import TestClient, make_client

SETTINGS = Settings(prediction_log=False)
ROW = np.array([[7.7, 3.0, 6.1, 2.3]])


def _sample(name: str, **labels: str) -> float:
    value = metrics._registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


class Constant:
    """A runtime answering one label for every row; `gate` holds its predicts until set."""

    kind = "sklearn"

    def __init__(self, label: int, gate: threading.Event | None = None) -> None:
        self.label = label
        self.gate = gate
        self.closed = False

    def predict(self, rows: np.ndarray) -> Prediction:
        if self.gate is not None:
            self.gate.wait(10)
        proba = np.zeros((len(rows), 3))
        proba[:, self.label] = 1.0
        return Prediction(np.full(len(rows), self.label), proba)

    def close(self) -> None:
        self.closed = True


class Broken(Constant):
    def predict(self, rows: np.ndarray) -> Prediction:
        raise RuntimeError("corrupt weights")


def _version(manifest: Manifest, version: int) -> Manifest:
    import msgspec

    return msgspec.structs.replace(manifest, version=version)


def test_in_flight_requests_finish_on_the_old_version_which_is_then_closed(
    iris: tuple[Manifest, Pipeline],
) -> None:
    manifest = iris[0]
    gate = threading.Event()
    old, new = Constant(1, gate), Constant(2)

    async def scenario() -> None:
        service = ModelService(_version(manifest, 1), Constant(1), SETTINGS)
        service.swap(_version(manifest, 1), old, tested=True)  # a slow version serving
        in_flight = asyncio.ensure_future(service.predict(ROW))
        await asyncio.sleep(0.05)  # submitted to version 1, blocked in its predict
        gate.set()  # the self-test of `old` is skipped (tested=True); `new` is checked
        service.swap(_version(manifest, 2), new)
        assert service.version == "2" and not old.closed  # still answering a request
        prediction, served = await in_flight
        assert (served.version, prediction.labels.tolist()) == (1, [1])
        assert old.closed
        prediction, served = await service.predict(ROW)
        assert (served.version, prediction.labels.tolist()) == (2, [2])
        service.close()
        assert new.closed

    asyncio.run(scenario())


def test_a_version_failing_its_self_test_is_not_swapped_in(
    iris: tuple[Manifest, Pipeline],
) -> None:
    manifest = iris[0]
    service = ModelService(_version(manifest, 1), Constant(1), SETTINGS)
    with pytest.raises(ArtifactError, match="self-test"):
        service.swap(_version(manifest, 2), Broken(0))
    assert service.version == "1"
    prediction, served = asyncio.run(service.predict(ROW))
    assert served.version == 1 and prediction.labels.tolist() == [1]
    service.close()


def test_rows_validated_for_other_inputs_are_refused_with_503(
    iris: tuple[Manifest, Pipeline],
) -> None:
    service = ModelService(_version(iris[0], 1), Constant(1), SETTINGS)
    with pytest.raises(OverloadedError, match="retry"):
        asyncio.run(service.predict(np.array([[1.0, 2.0, 3.0]])))
    service.close()


# -- the registry poller ------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path, iris: tuple[Manifest, Pipeline]) -> Iterator[Registry]:
    """A local registry holding iris:1 and iris:2 (iris:1 in production)."""
    manifest, pipeline = iris
    home = tmp_path / "home"
    with open_registry(Settings(home=home)) as reg:
        for _ in range(2):
            reg.publish(store.stage(manifest=manifest, pipeline=pipeline, files={}, home=home))
        reg.promote("iris", 1, "production")
        yield reg


def _publish(registry: Registry, iris: tuple[Manifest, Pipeline]) -> Manifest:
    manifest, pipeline = iris
    staged = store.stage(manifest=manifest, pipeline=pipeline, files={}, home=registry.home)
    return registry.publish(staged)


def test_poller_swaps_a_moved_alias_and_refuses_a_tampered_version_once(
    registry: Registry, iris: tuple[Manifest, Pipeline]
) -> None:
    manifest1, _ = registry.fetch("iris:1")
    settings = Settings(home=registry.home, prediction_log=False)

    async def scenario() -> None:
        service = ModelService(manifest1, SklearnRuntime(iris[1], manifest1), settings)
        pinned = ModelService(manifest1, SklearnRuntime(iris[1], manifest1), settings)
        poller = Poller(
            settings,
            [("iris@production", service), ("iris:1", pinned)],
            lambda: registry,
            owned=False,
        )
        assert [ref for ref, _ in poller.tracked] == ["iris@production"]  # pinned: not polled
        swaps = _sample("tabserve_model_swaps_total", model="iris")
        failures = _sample("tabserve_model_swap_failures_total", model="iris")
        assert (await poller.poll())[0]["version"] == "1"  # nothing moved
        registry.promote("iris", 2, "production")
        report = await poller.poll()
        assert report[0]["swapped"] == {"from": "1", "to": "2"}
        prediction, served = await service.predict(ROW)
        assert served.version == 2 and prediction.labels.tolist() == [2]
        assert _sample("tabserve_model_swaps_total", model="iris") == swaps + 1

        broken = _publish(registry, iris)
        model = registry.home / "models" / "iris" / str(broken.version) / "model.skops"
        model.write_bytes(model.read_bytes() + b"x")
        registry.promote("iris", broken.version, "production")
        for _ in range(3):  # refused once, then not retried every poll
            report = await poller.poll()
            assert report[0]["version"] == "2" and report[0]["failed"] == broken.version
        assert _sample("tabserve_model_swap_failures_total", model="iris") == failures + 1
        await poller.poll(retry_failed=True)  # an admin reload tries again
        assert _sample("tabserve_model_swap_failures_total", model="iris") == failures + 2
        assert service.version == "2" and pinned.version == "1"
        await poller.stop()
        service.close()
        pinned.close()

    asyncio.run(scenario())


def test_an_admin_reload_asked_of_one_worker_is_carried_out_by_every_worker(
    registry: Registry, iris: tuple[Manifest, Pipeline], tmp_path: Path
) -> None:
    """Two workers' pollers share one board: polling on their own only once an hour."""
    manifest1, _ = registry.fetch("iris:1")
    settings = Settings(home=registry.home, prediction_log=False, workers=2, registry_poll=3600)
    folder = reload.prepare_dir(tmp_path / "reload")
    os.environ.pop(reload.ENV)  # prepare_dir exports it for forked workers; not needed here

    async def scenario() -> None:
        services = [
            ModelService(manifest1, SklearnRuntime(iris[1], manifest1), settings) for _ in "ab"
        ]
        # Two live processes stand for the two workers: this one and its parent.
        boards = [ReloadBoard(folder), ReloadBoard(folder, pid=os.getppid())]
        pollers = [
            Poller(settings, [("iris", s)], lambda: registry, owned=False, board=b)
            for s, b in zip(services, boards, strict=True)
        ]
        for poller in pollers:
            poller.start()
        registry.promote("iris", 2, "production")
        report, workers, _ = await pollers[0].reload_everywhere(timeout=10)
        assert report[0]["swapped"] == {"from": "1", "to": "2"}
        assert sorted(w["pid"] for w in workers) == sorted([os.getpid(), os.getppid()])
        assert all(w["models"][0]["version"] == "2" for w in workers)
        assert [s.version for s in services] == ["2", "2"]  # not an hour later
        # A third worker that never answers: the reload says so when its wait ends.
        three = Settings(home=registry.home, prediction_log=False, workers=3, registry_poll=3600)
        pollers[0].settings = three
        _, workers, _ = await pollers[0].reload_everywhere(timeout=0.5)
        assert len(workers) == 2
        for poller in pollers:
            await poller.stop()
        for service in services:
            service.close()

    asyncio.run(scenario())


def test_a_reload_board_sees_each_request_once_and_counts_live_workers_only(
    tmp_path: Path,
) -> None:
    asker, other = ReloadBoard(tmp_path), ReloadBoard(tmp_path, pid=os.getppid())
    assert other.changed() is None  # nothing asked yet
    token = asker.request()
    assert asker.changed() is None  # the asker polls for its own request itself
    assert other.changed() == token
    assert other.changed() is None  # seen once
    later = asker.request()
    assert later > token and other.changed() == later
    other.acknowledge(token, [])  # an acknowledgement of an older request ...
    assert asker.acknowledged(later) == []  # ... does not answer a newer one
    other.acknowledge(later, [{"ref": "iris", "version": "2"}])
    assert asker.acknowledged(token) == [
        {"pid": os.getppid(), "models": [{"ref": "iris", "version": "2"}]}
    ]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    ReloadBoard(tmp_path, pid=int(gone.stdout)).acknowledge(later, [])  # a worker since dead
    assert [a["pid"] for a in asker.acknowledged(later)] == [os.getppid()]


# -- shadow traffic -----------------------------------------------------------------------


class Recorder:
    """A prediction sink keeping (role, version, rows) of each record."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, int]] = []

    def record(self, manifest: Manifest, *args: Any, role: str = "live") -> None:
        self.records.append((role, manifest.version, len(args[2])))


def test_shadow_counts_disagreements_exactly_and_logs_rows_as_shadow(
    iris: tuple[Manifest, Pipeline],
) -> None:
    manifest = _version(iris[0], 7)
    sink = Recorder()
    rows = np.tile(ROW, (10, 1))

    async def scenario() -> None:
        live = ModelService(manifest, SklearnRuntime(iris[1], manifest), SETTINGS, sink)
        candidate = ModelService(_version(iris[0], 8), Constant(0), SETTINGS, inline=False)
        shadow = ShadowTraffic(live, candidate)
        shadow.start()
        before = _sample("tabserve_shadow_disagreements_total", model="iris", version="8")
        seen = _sample("tabserve_shadow_predictions_total", model="iris", version="8")
        prediction, _ = await live.predict(rows, request_id="r1")
        assert prediction.labels.tolist() == [2] * 10  # the live answer, untouched
        for _ in range(200):
            if len(sink.records) == 2:
                break
            await asyncio.sleep(0.01)
        assert sink.records == [("live", 7, 10), ("shadow", 8, 10)]
        assert _sample("tabserve_shadow_predictions_total", model="iris", version="8") == seen + 10
        assert (
            _sample("tabserve_shadow_disagreements_total", model="iris", version="8") == before + 10
        )
        await shadow.stop()
        live.close()
        candidate.close()

    asyncio.run(scenario())


def test_shadow_drops_and_counts_copies_when_it_lags(iris: tuple[Manifest, Pipeline]) -> None:
    manifest = _version(iris[0], 11)

    async def scenario() -> None:
        live = ModelService(manifest, Constant(1), SETTINGS)
        candidate = ModelService(_version(manifest, 12), Constant(1), SETTINGS)
        shadow = ShadowTraffic(live, candidate)  # not started: nothing consumes the queue
        dropped = _sample("tabserve_shadow_dropped_total", model="iris", version="12")
        label = Prediction(np.array([1]), None)
        for _ in range(shadow.queue.maxsize + 5):
            shadow.offer(ROW, label, manifest, "r", None)
        assert _sample("tabserve_shadow_dropped_total", model="iris", version="12") == dropped + 5
        live.close()
        candidate.close()

    asyncio.run(scenario())


def test_disagreements_of_labels_and_values() -> None:
    assert (
        disagreements(Prediction(np.array([0, 1, 2]), None), Prediction(np.array([0, 2, 2]), None))
        == 1
    )
    assert (
        disagreements(
            Prediction(np.array(["a", "b"], dtype=object), None),
            Prediction(np.array(["a", "b"], dtype=object), None),
        )
        == 0
    )
    assert (
        disagreements(
            Prediction(np.array([1.0, 2.0]), None), Prediction(np.array([1.0, 2.5]), None)
        )
        == 1
    )


# -- several versions and admin reload ----------------------------------------------------


def test_several_versions_are_served_side_by_side(iris: tuple[Manifest, Pipeline]) -> None:
    manifest, pipeline = iris
    v1, v2 = _version(manifest, 1), _version(manifest, 2)
    app = create_app(
        Settings(prediction_log=False, models=["iris:1", "iris:2"]),
        models=[(v1, SklearnRuntime(pipeline, v1)), (v2, SklearnRuntime(pipeline, v2))],
    )
    body = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW[0].tolist()}]
    }
    with TestClient(app) as client:
        assert client.post("/v2/models/iris/infer", json=body).json()["model_version"] == "1"
        two = client.post("/v2/models/iris/versions/2/infer", json=body)
        assert two.json()["model_version"] == "2" and two.headers["x-model-version"] == "2"
        v1_two = client.post("/v1/models/iris/versions/2:predict", json={"instances": ROW.tolist()})
        assert v1_two.headers["x-model-version"] == "2"
        missing = client.post("/v2/models/iris/versions/3/infer", json=body)
        assert missing.status_code == 404
        assert "loaded: 1, 2" in missing.json()["error"]


def test_admin_reload_exists_only_with_its_token(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris):
        assert client.post("/admin/reload").status_code == 404
    for client in make_client(iris, admin_token="s3cret-admin", api_tokens="api-token"):
        assert client.post("/admin/reload").status_code == 401
        wrong = client.post("/admin/reload", headers={"Authorization": "Bearer api-token"})
        assert wrong.status_code == 401
        ok = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret-admin"})
        assert ok.status_code == 200 and ok.json() == {"models": [], "workers": []}
        assert client.get("/admin/reload").status_code == 405


def test_a_worker_whose_model_fails_to_load_does_not_start(tmp_path: Path) -> None:
    from tabserve.types import RuntimeInfo

    manifest = Manifest(
        name="ghost",
        version=1,
        created_at="2026-11-24T12:00:00Z",
        task="classification",
        target="y",
        features=[],
        data_fingerprint="0" * 64,
        source="test",
        estimator="sklearn",
        runtime=RuntimeInfo(kind="sklearn", file="model.skops"),
    )
    app = create_app(Settings(prediction_log=False), artifacts=[(manifest, tmp_path / "nothing")])
    with pytest.raises(Exception), TestClient(app):  # noqa: B017  # uvicorn exits the worker
        pass
