"""The web UI's pages and JSON over the app, and its view helpers on plain values."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from tabserve.artifacts import store
from tabserve.artifacts.registry import open_registry
from tabserve.serving import metrics
from tabserve.serving.ui_views import (
    curl_examples,
    histogram_svg,
    live_snapshot,
    quantile,
    runtime_text,
)
from tabserve.settings import Settings
from tabserve.types import Histogram, Manifest, RuntimeInfo

from .conftest import FLOWER, TestClient, make_client

Model = tuple[Manifest, Pipeline]


@pytest.fixture
def in_process_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Metrics in this process only, whatever an earlier test left in the environment."""
    monkeypatch.delenv(metrics.ENV_DIR, raising=False)
    metrics._build()
    yield
    metrics._build()


@pytest.fixture
def registered(iris: Model, tabserve_home: Path) -> Iterator[TestClient]:
    """The Iris model published to the test's registry (with a report) and served from it."""
    manifest, pipeline = iris
    report = {"report/confusion_matrix.png": b"\x89PNG\r\n\x1a\nfake", "report/metrics.json": b"{}"}
    manifest = msgspec.structs.replace(manifest, metrics={"accuracy": 0.96, "per_class": {}})
    staged = store.stage(manifest=manifest, pipeline=pipeline, files=report, home=tabserve_home)
    settings = Settings(home=tabserve_home)
    with open_registry(settings) as registry:
        published = registry.publish(staged)
        registry.promote("iris", published.version, "production")
    yield from make_client((published, pipeline), home=tabserve_home)


def test_models_page_lists_name_version_alias_runtime_task_and_metrics(
    registered: TestClient,
) -> None:
    page = registered.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for text in ("iris", "@production", "sklearn", "classification", "accuracy", "0.960"):
        assert text in html
    listed = registered.get("/ui/api/models").json()["models"]
    assert listed[0]["aliases"] == ["production"]
    assert listed[0]["ready"] is True


def test_card_is_complete_html_without_javascript(registered: TestClient) -> None:
    html = registered.get("/ui/models/iris").text
    assert "<script" not in html
    for name in FLOWER:
        assert f"<code>{name}</code>" in html
    assert html.count('<svg class="hist"') == 4
    assert "/ui/models/iris/report/confusion_matrix.png" in html
    assert "feature_importance.png" not in html  # only the plots the artifact has
    assert "/v1/models/iris:predict" in html and "/invocations" in html
    assert "scikit-learn" in html  # library versions


def test_report_image_is_served_only_when_listed_and_intact(
    registered: TestClient, tabserve_home: Path
) -> None:
    image = registered.get("/ui/models/iris/report/confusion_matrix.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == b"\x89PNG\r\n\x1a\nfake"
    for bad in ("metrics.json", "..%2Fmanifest.json", "feature_importance.png", "model.skops"):
        assert registered.get(f"/ui/models/iris/report/{bad}").status_code == 404
    # A file changed after training is refused: its sha256 no longer matches the manifest.
    folder = next((tabserve_home / "models" / "iris").iterdir())
    (folder / "report" / "confusion_matrix.png").write_bytes(b"tampered")
    assert registered.get("/ui/models/iris/report/confusion_matrix.png").status_code == 404


def test_try_form_has_a_labelled_input_named_after_each_feature(client: TestClient) -> None:
    html = client.get("/ui/models/iris/try").text
    for name in FLOWER:
        assert f'name="{name}" type="number"' in html
    labels = html.count("<label for=")
    assert labels == len(FLOWER)
    assert 'action="/models/iris"' in html  # without JavaScript: the lecture's GET
    assert "training range 4.3 to 7.9" in html


def test_try_form_uses_a_select_for_categories(mixed: Model) -> None:
    for c in make_client(mixed):
        html = c.get("/ui/models/mixed/try").text
        assert '<select id="f-2" name="city"' in html
        assert '<option value="lyon">lyon</option>' in html
        assert "(missing)" not in html.split('name="city"')[1].split("</select>")[0]
        assert "may be left empty" in html  # age was missing in training


def test_unknown_model_is_404_and_wrong_method_405(client: TestClient) -> None:
    page = client.get("/ui/models/nope")
    assert page.status_code == 404
    assert "iris" in page.text  # names what is served
    assert client.get("/ui/api/models/nope/live").status_code == 404
    assert client.post("/ui/models/iris").status_code == 405
    assert client.get("/ui/static/ui.css").status_code == 200
    assert client.get("/ui/static/missing.js").status_code == 404


@pytest.mark.usefixtures("in_process_metrics")
def test_live_json_counts_a_prediction_just_made(client: TestClient) -> None:
    before = client.get("/ui/api/models/iris/live").json()
    assert client.get("/models/iris", params=FLOWER).json() == {"prediction": "2"}
    after = client.get("/ui/api/models/iris/live").json()
    assert after["requests"]["total"] == before["requests"]["total"] + 1
    cls = {c["label"]: c["live"] for c in after["classes"]}
    assert cls["2"] == {c["label"]: c["live"] for c in before["classes"]}["2"] + 1
    assert after["latency"]["p99"] is not None
    assert [d["feature"] for d in after["drift"]] == list(FLOWER)


def test_live_snapshot_from_prometheus_text(iris: Model) -> None:
    manifest = msgspec.structs.replace(
        iris[0],
        metrics={"per_class": {"0": {"support": 10}, "1": {"support": 10}, "2": {"support": 20}}},
    )
    text = "\n".join(
        [
            "# TYPE tabserve_http_requests counter",
            'tabserve_http_requests_total{route="/v2/models/{name}/infer",method="POST",status="200"} 8',
            'tabserve_http_requests_total{route="/v2/models/{name}/infer",method="POST",status="422"} 1',
            'tabserve_http_requests_total{route="/v2/models/{name}/infer",method="POST",status="500"} 1',
            'tabserve_http_requests_total{route="/ui/api/models/{name}/live",method="GET",status="200"} 50',
            "# TYPE tabserve_http_request_duration_seconds histogram",
            'tabserve_http_request_duration_seconds_bucket{route="/v2/models/{name}/infer",method="POST",le="0.001"} 5',
            'tabserve_http_request_duration_seconds_bucket{route="/v2/models/{name}/infer",method="POST",le="0.01"} 10',
            'tabserve_http_request_duration_seconds_bucket{route="/v2/models/{name}/infer",method="POST",le="+Inf"} 10',
            'tabserve_http_request_duration_seconds_count{route="/v2/models/{name}/infer",method="POST"} 10',
            'tabserve_http_request_duration_seconds_sum{route="/v2/models/{name}/infer",method="POST"} 0.02',
            "# TYPE tabserve_predictions counter",
            'tabserve_predictions_total{model="iris",version="1",class="2"} 6',
            'tabserve_predictions_total{model="iris",version="1",class="0"} 2',
            'tabserve_predictions_total{model="other",version="1",class="0"} 99',
            "# TYPE tabserve_feature_drift_psi gauge",
            'tabserve_feature_drift_psi{model="iris",feature="petal_width"} 0.35',
            'tabserve_feature_drift_psi{model="iris",feature="sepal_width"} 0.01',
            "",
        ]
    )
    s = live_snapshot(text, manifest)
    assert s["requests"] == {"total": 10, "errors": 1, "rejected": 1}  # UI polling not counted
    assert s["latency"]["p50"] == pytest.approx(0.001)
    assert s["latency"]["p99"] == pytest.approx(0.001 + 0.009 * (9.9 - 5) / 5)
    assert s["predictions"] == 8
    classes = {c["label"]: c for c in s["classes"]}
    assert classes["2"]["live_share"] == pytest.approx(0.75)
    assert classes["2"]["training_share"] == pytest.approx(0.5)
    assert classes["1"]["live"] == 0
    drift = {d["feature"]: d for d in s["drift"]}
    assert drift["petal_width"]["drifting"] is True
    assert drift["sepal_width"]["drifting"] is False
    assert drift["sepal_length"]["psi"] is None


@pytest.mark.usefixtures("in_process_metrics")
def test_live_snapshot_reads_the_module_metrics(iris: Model) -> None:
    metrics.count_predictions("uitest", 1, np.array([0, 0, 1]))
    body, _ = metrics.render()
    manifest = msgspec.structs.replace(iris[0], name="uitest")
    classes = {c["label"]: c["live"] for c in live_snapshot(body.decode(), manifest)["classes"]}
    assert classes == {"0": 2, "1": 1, "2": 0}


def test_quantile_matches_prometheus_histogram_quantile() -> None:
    bounds = [0.1, 0.2, 0.4, float("inf")]
    assert quantile(0.5, bounds, [0, 10, 10, 10]) == pytest.approx(0.15)
    assert quantile(0.99, bounds, [0, 0, 0, 4]) == pytest.approx(0.4)  # the +Inf bucket
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None


def test_histogram_svg_bar_area_follows_counts_and_escapes_the_name() -> None:
    svg = str(histogram_svg(Histogram(edges=[0, 1, 3], counts=[2, 2]), "<x>"))
    assert svg.count("<rect") == 2
    assert "&lt;x&gt;" in svg and "<x>" not in svg
    # Same count over twice the width: half the height.
    heights = [float(part.split('"')[0]) for part in svg.split('height="')[2:]]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert str(histogram_svg(None, "x")) == ""


def test_curl_examples_run_as_shell_commands(iris: Model) -> None:
    examples = dict(curl_examples(iris[0], "http://127.0.0.1:8000/"))
    assert set(examples) == {
        "Lecture GET",
        "KServe V1",
        "Open Inference Protocol V2",
        "MLflow (the default model)",
    }
    for command in examples.values():
        argv = shlex.split(command)
        assert argv[0] == "curl"
        assert any(a.startswith("http://127.0.0.1:8000/") for a in argv)
    v2 = shlex.split(examples["Open Inference Protocol V2"])
    body: dict[str, Any] = msgspec.json.decode(v2[v2.index("-d") + 1])
    assert body["inputs"][0]["shape"] == [1, 4]
    assert subprocess.run(["bash", "-n", "-c", examples["KServe V1"]], check=False).returncode == 0


def test_runtime_text_says_why(iris: Model) -> None:
    onnx = msgspec.structs.replace(
        iris[0],
        runtime=RuntimeInfo(
            kind="onnx", file="model.onnx", parity={"rows": 150, "label_mismatches": 0}
        ),
    )
    assert "parity checked on 150 rows" in runtime_text(onnx)
    fallback = msgspec.structs.replace(
        iris[0],
        runtime=RuntimeInfo(kind="sklearn", file="model.skops", reason="unsupported op Foo"),
    )
    assert runtime_text(fallback) == "sklearn (unsupported op Foo)"
