"""The web UI at `/ui`: models page, model card, try-it form, live monitoring.

Pages are rendered on the server from jinja2 templates (the card reads without JavaScript);
the try-it form and the live page add small vanilla scripts from `static/ui/`, no CDN. The
live page polls `/ui/api/models/NAME/live`, built from `metrics.render()`: the Prometheus
text aggregated over every worker, so a poll answered by any worker shows the whole server.

The app factory includes everything with one call: `routes(get_models, settings, artifacts)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tabserve import logging as tlog
from tabserve.artifacts.registry import metrics_summary
from tabserve.errors import ModelNotFoundError, TabserveError
from tabserve.serving import metrics
from tabserve.serving.ui_views import (
    REPORT_IMAGES,
    curl_examples,
    example_value,
    histogram_svg,
    live_snapshot,
    runtime_text,
)
from tabserve.settings import Settings
from tabserve.types import Manifest

__all__ = ["GetModels", "ServedModels", "routes"]

log = tlog.get_logger("tabserve.ui")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static" / "ui"
TEMPLATES_DIR = HERE / "templates" / "ui"

# Pages load nothing from elsewhere, run no inline script and allow no inline style.
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)

GetModels = Callable[[], Sequence[tuple[Manifest, bool]]]


# --- the served models, their folders and aliases ----------------------------------------


class ServedModels:
    """The served manifests (from the app), their verified folders and registry aliases."""

    ALIAS_TTL = 5.0

    def __init__(
        self,
        get_models: GetModels,
        settings: Settings,
        artifacts: Iterable[tuple[Manifest, Path]] | None = None,
    ) -> None:
        self.get_models = get_models
        self.settings = settings
        self._folders: dict[tuple[str, int], Path] = {
            (m.name, m.version): p for m, p in artifacts or ()
        }
        self._aliases: dict[str, tuple[float, dict[str, int]]] = {}
        self._registry: Any = None
        self._lock = threading.Lock()

    def all(self) -> list[tuple[Manifest, bool]]:
        """Every served model and whether it is ready, by name."""
        return sorted(self.get_models(), key=lambda pair: pair[0].name)

    def get(self, name: str) -> tuple[Manifest, bool]:
        """One served model by name, else ModelNotFoundError (404)."""
        for manifest, ready in self.get_models():
            if manifest.name == name:
                return manifest, ready
        served = ", ".join(sorted(m.name for m, _ in self.get_models())) or "none"
        raise ModelNotFoundError(f"model {name!r} is not served here; models: {served}")

    def _open_registry(self) -> Any:
        # Never create a registry as a side effect of showing a page: only open an existing one.
        s = self.settings
        if self._registry is None and (
            s.registry_url is not None or (s.home / "registry.db").exists()
        ):
            from tabserve.artifacts.registry import open_registry

            self._registry = open_registry(s)
        return self._registry

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version from the registry (cached a few seconds); empty when unknown."""
        cached = self._aliases.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.ALIAS_TTL:
            return cached[1]
        try:
            with self._lock:
                registry = self._open_registry()
                found = registry.aliases(name) if registry is not None else {}
        except TabserveError as error:
            log.warning("aliases unavailable", model=name, error=error.message)
            found = {}
        self._aliases[name] = (time.monotonic(), found)
        return found

    def folder(self, manifest: Manifest) -> Path | None:
        """The verified artifact folder of a served version (fetched once from the registry)."""
        key = (manifest.name, manifest.version)
        if key not in self._folders:
            try:
                with self._lock:
                    registry = self._open_registry()
                    if registry is None:
                        return None
                    fetched, path = registry.fetch(manifest.ref)
            except TabserveError as error:
                log.warning("artifact folder unavailable", model=manifest.ref, error=error.message)
                return None
            if fetched.files != manifest.files:
                return None
            self._folders[key] = path
        return self._folders[key]

    def report_image(self, manifest: Manifest, file: str) -> bytes | None:
        """A report PNG's bytes when it is listed, in the folder, and matches its sha256."""
        if file not in REPORT_IMAGES:
            return None
        rel = f"report/{file}"
        expected = manifest.files.get(rel)
        folder = self.folder(manifest)
        if expected is None or folder is None:
            return None
        try:
            data = (folder / "report" / file).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != expected:
            log.warning("report file changed since training", model=manifest.ref, file=rel)
            return None
        return data

    def report_metrics(self, manifest: Manifest) -> dict[str, Any]:
        """report/metrics.json when present and intact, else the manifest's metrics."""
        folder = self.folder(manifest)
        expected = manifest.files.get("report/metrics.json")
        if folder is not None and expected is not None:
            try:
                data = (folder / "report" / "metrics.json").read_bytes()
                if hashlib.sha256(data).hexdigest() == expected:
                    loaded = json.loads(data)
                    if isinstance(loaded, dict):
                        return loaded
            except (OSError, ValueError):
                pass
        return dict(manifest.metrics)


# --- pages --------------------------------------------------------------------------------


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _env.get_template(template).render({"nav": "", "page": "", **context})
    return HTMLResponse(body, status, headers=_SECURITY_HEADERS)


def _model_row(models: ServedModels, manifest: Manifest, ready: bool) -> dict[str, Any]:
    aliases = models.aliases(manifest.name)
    return {
        "name": manifest.name,
        "version": manifest.version,
        "aliases": sorted(a for a, v in aliases.items() if v == manifest.version),
        "runtime": runtime_text(manifest),
        "task": manifest.task,
        "trained": manifest.created_at,
        # Row counts sit beside the metrics in the manifest; they are shown as data, not scores.
        "metrics": {
            k: v for k, v in metrics_summary(manifest.metrics).items() if not k.endswith("_rows")
        },
        "ready": ready,
    }


def _features(manifest: Manifest) -> list[dict[str, Any]]:
    return [
        {
            "f": f,
            "svg": histogram_svg(f.histogram, f.name),
            "example": example_value(f),
        }
        for f in manifest.features
    ]


def routes(
    get_models: GetModels,
    settings: Settings,
    artifacts: Iterable[tuple[Manifest, Path]] | None = None,
) -> list[BaseRoute]:
    """The UI's routes: pages under /ui, their JSON under /ui/api, assets under /ui/static.

    `get_models` returns each served (manifest, ready) now; `artifacts` are the verified
    folders the server started with (other versions are fetched from the registry).
    """
    models = ServedModels(get_models, settings, artifacts)

    async def index(request: Request) -> Response:
        rows = await asyncio.to_thread(lambda: [_model_row(models, m, r) for m, r in models.all()])
        return _page("models.html", models=rows)

    async def card(request: Request) -> Response:
        manifest, ready = models.get(request.path_params["name"])
        row, report = await asyncio.to_thread(
            lambda: (_model_row(models, manifest, ready), models.report_metrics(manifest))
        )
        images = [
            (file, alt) for file, alt in REPORT_IMAGES.items() if f"report/{file}" in manifest.files
        ]
        return _page(
            "card.html",
            m=manifest,
            row=row,
            report=report,
            per_class=report.get("per_class") if isinstance(report.get("per_class"), dict) else {},
            features=_features(manifest),
            images=images,
            curls=curl_examples(manifest, str(request.base_url)),
            params=json.dumps(manifest.params, indent=1, sort_keys=True, default=str),
        )

    async def try_it(request: Request) -> Response:
        manifest, ready = models.get(request.path_params["name"])
        return _page("try.html", m=manifest, ready=ready, features=_features(manifest))

    async def live(request: Request) -> Response:
        manifest, _ = models.get(request.path_params["name"])
        snapshot = await asyncio.to_thread(_snapshot, manifest)
        return _page("live.html", m=manifest, s=snapshot)

    async def api_models(request: Request) -> Response:
        rows = await asyncio.to_thread(lambda: [_model_row(models, m, r) for m, r in models.all()])
        return JSONResponse({"models": rows})

    async def api_live(request: Request) -> Response:
        manifest, _ = models.get(request.path_params["name"])
        return JSONResponse(await asyncio.to_thread(_snapshot, manifest))

    async def report(request: Request) -> Response:
        manifest, _ = models.get(request.path_params["name"])
        data = await asyncio.to_thread(models.report_image, manifest, request.path_params["file"])
        if data is None:
            return _error(404, "no such report image for this model")
        return Response(
            data, media_type="image/png", headers={"cache-control": "private, max-age=300"}
        )

    table: list[tuple[str, Callable[[Request], Any]]] = [
        ("/ui", index),
        ("/ui/", index),
        ("/ui/models/{name}", card),
        ("/ui/models/{name}/try", try_it),
        ("/ui/models/{name}/live", live),
        ("/ui/models/{name}/report/{file}", report),
        ("/ui/api/models", api_models),
        ("/ui/api/models/{name}/live", api_live),
    ]
    built: list[BaseRoute] = [Route(path, _guarded(h, path)) for path, h in table]
    built.append(Mount("/ui/static", _Static(), name="ui-static"))
    return built


class _Static:
    """The UI's CSS and JS; a missing file answers 404 itself (no exception middleware needed)."""

    template = "/ui/static"

    def __init__(self) -> None:
        self.files = StaticFiles(directory=STATIC_DIR)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.files(scope, receive, send)
        except HTTPException as error:
            await _error(error.status_code, "no such UI asset")(scope, receive, send)


def _snapshot(manifest: Manifest) -> dict[str, Any]:
    body, _ = metrics.render()
    return live_snapshot(body.decode("utf-8"), manifest)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message, "details": []}, status, headers)


def _guarded(handler: Callable[[Request], Any], template: str) -> Callable[[Request], Any]:
    """The handler with unknown models answered 404 and the route template set for metrics."""

    async def endpoint(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, f"{request.method} is not allowed here: use GET", {"allow": "GET"})
        try:
            response: Response = await handler(request)
        except ModelNotFoundError as error:
            if request.url.path.startswith("/ui/api/"):
                return _error(404, error.message)
            return _page("missing.html", 404, message=error.message)
        return response

    endpoint.template = template  # type: ignore[attr-defined]  # read by the middleware's metrics
    return endpoint
