"""Every path and port the deployment files name is one the real server serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Route
from tests.unit.deploy.helpers import load_yaml_docs

from tabserve.deploy.render import LIVE_PATH, METRICS_PATH, READY_PATH
from tabserve.serving.app import create_app
from tabserve.settings import Settings
from tabserve.types import Manifest


def _get_paths(artifact: tuple[Manifest, Path]) -> set[str]:
    app: Any = create_app(Settings(), artifacts=[artifact])
    while not hasattr(app, "routes"):  # through the ASGI middleware to the router
        app = app.app
    return {r.path for r in app.routes if isinstance(r, Route) and "GET" in (r.methods or set())}


def test_health_and_metrics_paths_are_real_get_routes(iris_artifact: tuple[Manifest, Path]) -> None:
    paths = _get_paths(iris_artifact)
    assert {LIVE_PATH, READY_PATH, METRICS_PATH, "/"} <= paths


def test_every_probe_path_in_the_files_is_a_route(
    rendered: Path, iris_artifact: tuple[Manifest, Path]
) -> None:
    paths = _get_paths(iris_artifact)
    named: list[str] = []
    for name in ("deployment.yaml", "kserve.yaml"):
        for doc in load_yaml_docs(rendered / "k8s" / name):
            spec = doc["spec"]
            pod = spec.get("template", {}).get("spec", spec)  # type: ignore[union-attr]
            for container in pod.get("containers", []):
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if probe in container:
                        named.append(container[probe]["httpGet"]["path"])
    compose = load_yaml_docs(rendered / "compose.yaml")[0]
    named.append(compose["services"]["api"]["healthcheck"]["test"][-1])  # type: ignore[index]
    dockerfile = (rendered / "Dockerfile").read_text()
    named.append(dockerfile.split("tabserve.deploy.healthcheck", 1)[1].split('"')[2])
    assert len(named) >= 6
    assert set(named) <= paths
