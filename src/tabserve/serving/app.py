"""`create_app(settings, registry)`: the routes, one pure ASGI middleware, a lifespan that loads models.

The lifespan runs in each worker after the fork: it loads every model in a thread and
self-tests it before startup completes, so a worker accepts connections only once it can
predict (a failed load makes the worker exit non-zero; the master stops when that repeats).
The master (server.py) has already resolved and verified the artifacts and hands their folders
over as `artifacts` (the served refs' first, then the --shadow ones); tests hand in loaded
runtimes as `models`. Afterwards `lifecycle.py` polls the registry and hot-swaps moved references.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from tabserve import logging as tlog
from tabserve.errors import (
    ModelNotFoundError,
    OverloadedError,
    TabserveError,
    UsageError,
)
from tabserve.serving import metrics, routes
from tabserve.serving.auth import with_auth
from tabserve.serving.inference import ModelService, PredictionSink, load_runtime
from tabserve.serving.lifecycle import ADMIN_RELOAD, Poller, ShadowTraffic, admin_reload
from tabserve.serving.middleware import ServingMiddleware
from tabserve.serving.reload import ReloadBoard
from tabserve.serving.responses import encode, error_body, send_response
from tabserve.settings import Settings
from tabserve.types import Manifest, Runtime

if TYPE_CHECKING:
    from tabserve.artifacts.registry import Registry

__all__ = ["ServingState", "create_app", "resolve_artifacts"]

log = tlog.get_logger("tabserve.serving")

Scope = MutableMapping[str, Any]


def served_refs(settings: Settings, registry: Registry) -> list[str]:
    """The references served: those named, else every model's name (production, else newest)."""
    refs = list(settings.models)
    if not refs:
        refs = sorted({record.name for record in registry.list()})
        if not refs:
            raise ModelNotFoundError(
                f"no models in {registry.where}: train one with `tabserve train` or import one "
                "with `tabserve import`"
            )
    return refs


def resolve_artifacts(settings: Settings, registry: Registry) -> list[tuple[Manifest, Path]]:
    """A verified local folder per served reference, then one per --shadow reference."""
    artifacts = []
    for ref in [*served_refs(settings, registry), *settings.shadow]:
        record = registry.resolve(ref)
        artifacts.append(registry.fetch(record.ref))
    return artifacts


class ServingState:
    """The models this worker serves and whether they are ready."""

    def __init__(self, settings: Settings, sink: PredictionSink | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.services: dict[str, ModelService] = {}  # name -> the unversioned routes' service
        self.loaded: list[ModelService] = []  # every routable service, several per name allowed
        self.shadows: list[ShadowTraffic] = []
        self.poller: Poller | None = None
        self.default_name: str | None = settings.default_model
        self.expected = 0  # models still to load
        self.failed: str | None = None
        self._openapi: bytes | None = None

    @property
    def ready(self) -> bool:
        """Every model loaded and self-tested."""
        return (
            self.failed is None
            and self.expected == 0
            and bool(self.loaded)
            and all(s.ready for s in self.loaded)
        )

    def add(self, service: ModelService) -> None:
        """Serve one more model version (the first of a name answers its unversioned routes)."""
        self.services.setdefault(service.name, service)
        self.loaded.append(service)
        self._openapi = None

    def service(self, name: str, version: str | None = None) -> ModelService:
        """The service for a model name (and version, when the URL names one), else 404."""
        service = self.services.get(name)
        if service is None:
            if self.expected > 0 and self.failed is None:
                raise OverloadedError("the models are still loading: retry in a moment")
            raise routes.not_found(self, name)
        if version is None or version == service.version:
            return service
        for other in self.loaded:
            if other.name == name and other.version == version:
                return other
        served = sorted({s.version for s in self.loaded if s.name == name}, key=_version_order)
        raise ModelNotFoundError(
            f"version {version!r} of {name} is not loaded here; loaded: {', '.join(served)}"
        )

    def lecture_service(self, name: str | None) -> ModelService:
        """The model behind `GET /` and `/invocations` (or `/models/NAME`)."""
        if name is not None:
            return self.service(name)
        if self.default_name is not None:
            return self.service(self.default_name)
        if len(self.services) == 1:
            return next(iter(self.services.values()))
        raise ModelNotFoundError(
            "several models are served and none is the default: use /models/NAME or "
            f"--default-model; models: {', '.join(sorted(self.services)) or 'none yet'}"
        )

    def openapi(self) -> bytes:
        """The OpenAPI document, built once per set of models."""
        if self._openapi is None:
            from tabserve.serving.openapi import openapi_spec

            manifests = [s.manifest for s in self.services.values()]
            default = self.default_name
            if default is None and len(manifests) > 1:
                default = None
            self._openapi = encode(
                openapi_spec(
                    manifests,
                    default,
                    max_batch_rows=self.settings.max_batch_rows,
                    auth=self.settings.api_tokens is not None
                    or self.settings.api_tokens_file is not None,
                )
            )
        return self._openapi

    def close(self) -> None:
        """Release every runtime."""
        for service in self.loaded:
            service.close()
        for shadow in self.shadows:
            shadow.candidate.close()


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def _route(state: ServingState, path: str, handler: routes.Handler, methods: list[str]) -> Route:
    return _Route(path, routes.Endpoint(state, handler, path), methods=methods)


def _routes(state: ServingState) -> list[BaseRoute]:
    get, post = ["GET"], ["POST"]
    table: list[tuple[str, routes.Handler, list[str]]] = [
        ("/", routes.lecture_get, get),
        ("/v2/models/{name}/infer", routes.v2_infer, post),
        ("/v2/models/{name}/versions/{version}/infer", routes.v2_infer, post),
        ("/v1/models/{name}:predict", routes.v1_predict, post),
        ("/v1/models/{name}:predict_proba", routes.v1_predict_proba, post),
        ("/v1/models/{name}/versions/{version}:predict", routes.v1_predict, post),
        ("/v1/models/{name}/versions/{version}:predict_proba", routes.v1_predict_proba, post),
        ("/invocations", routes.invocations, post),
        ("/models/{name}", routes.lecture_get, get),
        ("/v2", routes.v2_server, get),
        ("/v2/health/live", routes.v2_live, get),
        ("/v2/health/ready", routes.v2_ready, get),
        ("/v2/models/{name}", routes.v2_model, get),
        ("/v2/models/{name}/ready", routes.v2_model_ready, get),
        ("/v2/models/{name}/versions/{version}", routes.v2_model, get),
        ("/v2/models/{name}/versions/{version}/ready", routes.v2_model_ready, get),
        ("/v1/models/{name}", routes.v1_model, get),
        ("/v1/models/{name}/feedback", routes.feedback, post),
        ("/ping", routes.ping, get),
        ("/health", routes.ping, get),
        ("/version", routes.version, get),
        ("/metrics", routes.metrics_page, get),
        ("/openapi.json", routes.openapi_json, get),
        ("/docs", routes.docs_page, get),
    ]
    built: list[BaseRoute] = [_route(state, path, h, m) for path, h, m in table]
    from tabserve.serving.openapi import STATIC_DIR

    built.append(Mount("/docs/assets", StaticFiles(directory=STATIC_DIR), name="docs-assets"))
    from tabserve.serving import ui  # the web UI at /ui

    built.extend(
        ui.routes(
            lambda: [(s.manifest, s.ready) for s in list(state.services.values())], state.settings
        )
    )
    return built


class _Route(Route):
    """A route whose method mismatch answers 405 in tabserve's JSON shape."""

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.methods and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            error = TabserveError(f"{scope['method']} is not allowed here: use {allow}")
            await send_response(send, 405, error_body(error), headers=[(b"allow", allow.encode())])
            return
        await self.app(scope, receive, send)


async def _not_found(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    error = TabserveError(f"no endpoint at {scope['path']!r}: see /docs for the endpoints")
    await send_response(send, 404, error_body(error))


def _load(
    state: ServingState,
    artifacts: Sequence[tuple[Manifest, Path]],
    settings: Settings,
) -> list[ModelService]:
    """Load every runtime (in a thread) and self-test it; the last len(--shadow) are shadows."""
    threads = settings.intra_op_threads()
    served = len(artifacts) - len(settings.shadow)
    loaded = []
    for i, (manifest, path) in enumerate(artifacts):
        started = time.perf_counter()
        runtime = load_runtime(path, manifest, threads=threads, settings=settings)
        # A shadow's predicts always leave the event loop: it must never slow live requests.
        service = ModelService(manifest, runtime, settings, state.sink, inline=i < served)
        loaded.append(service)
        state.expected -= 1
        seconds = time.perf_counter() - started
        metrics.set_model_loaded(manifest.name, manifest.version, seconds)
        log.info(
            "model ready", model=manifest.name, version=manifest.version, seconds=round(seconds, 3)
        )
    return loaded


def create_app(
    settings: Settings,
    registry: Registry | None = None,
    *,
    artifacts: Sequence[tuple[Manifest, Path]] | None = None,
    models: Sequence[tuple[Manifest, Runtime]] | None = None,
    sink: PredictionSink | None = None,
) -> ServingMiddleware:
    """The ASGI app. Models come from `models` (loaded), `artifacts` (verified folders) or `registry`."""
    state = ServingState(settings, sink)
    if models is not None:
        for manifest, runtime in models:
            state.add(ModelService(manifest, runtime, settings, sink))
    if state.default_name is None and settings.models:
        state.default_name = settings.models[0].split(":")[0].split("@")[0]
    if state.default_name is None and models is not None and len(models) == 1:
        state.default_name = models[0][0].name

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        predlog = None
        if settings.prediction_log and state.sink is None:
            from tabserve.monitoring.predlog import PredictionLog

            predlog = PredictionLog(settings)
            await predlog.start()
            state.sink = predlog
            for service in state.services.values():
                service.sink = predlog
        todo = artifacts
        if todo is None and models is None and registry is not None:
            todo = await asyncio.to_thread(resolve_artifacts, settings, registry)
        if todo:
            # Startup waits for the models: the worker accepts connections only once it can
            # predict; an exception here makes the worker exit non-zero.
            state.expected = len(todo)
            try:
                loaded = await asyncio.to_thread(_load, state, todo, settings)
                await _start_lifecycle(state, loaded, settings, registry)
            except BaseException as error:
                state.failed = str(error)
                tlog.log_error("model load failed", error)
                state.close()
                raise
        grpc_handle = None
        if settings.grpc_port is not None:
            from tabserve.serving.grpc import start_grpc  # after the fork: gRPC is not fork-safe

            grpc_handle = await start_grpc(
                lambda: state.services,
                settings,
                settings.grpc_port,
                ready=lambda: state.ready,
                versions=state.service,
            )
        # Everything allocated so far (modules, models, settings) lives as long as the worker:
        # keep it out of the cyclic collector, whose full passes over it showed as tail latency.
        gc.collect()
        gc.freeze()
        log.info("worker ready", pid=os.getpid(), models=len(state.loaded))
        try:
            yield
        finally:
            if grpc_handle is not None:
                await grpc_handle.stop(min(5.0, settings.graceful_timeout))
            if state.poller is not None:
                await state.poller.stop()
            for shadow in state.shadows:
                await shadow.stop()
            if predlog is not None:
                await predlog.close()
            state.close()

    # No Starlette application object around the router: its two exception middlewares
    # build a Request per request and showed as ~15% of a profile; ServingMiddleware is the
    # one layer, and the router's own 404/405 answer in JSON.
    router = Router(routes=_routes(state), default=_not_found, lifespan=lifespan)
    app = ServingMiddleware(
        _admin(with_auth(router, settings), state),  # the router itself when auth is off
        max_in_flight=settings.max_in_flight,
        timeout=settings.request_timeout,
        access_log=settings.access_log,
    )
    app.serving = state
    return app


def _admin(app: Any, state: ServingState) -> Any:
    """`POST /admin/reload` ahead of the API-token check (it has its own token); else app itself."""
    if state.settings.admin_token is None:
        return app  # the route does not exist: 404 like any unknown path
    reload = routes.Endpoint(state, admin_reload, ADMIN_RELOAD)

    async def gate(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == ADMIN_RELOAD:
            if scope["method"] != "POST":
                error = TabserveError(f"{scope['method']} is not allowed here: use POST")
                await send_response(send, 405, error_body(error), headers=[(b"allow", b"POST")])
                return
            await reload(scope, receive, send)
            return
        await app(scope, receive, send)

    return gate


async def _start_lifecycle(
    state: ServingState,
    loaded: list[ModelService],
    settings: Settings,
    registry: Registry | None,
) -> None:
    """Serve the loaded services, attach the shadows, start polling the unpinned references."""
    served = len(loaded) - len(settings.shadow)
    refs = list(settings.models) or [s.name for s in loaded[:served]]
    for service in loaded[:served]:
        state.add(service)
    for ref, candidate in zip(settings.shadow, loaded[served:], strict=True):
        live = state.services.get(candidate.name)
        if live is None:
            raise UsageError(
                f"--shadow {ref}: no version of {candidate.name} is served to copy requests from"
            )
        shadow = ShadowTraffic(live, candidate)
        shadow.start()
        state.shadows.append(shadow)
    tracked = [
        *zip(refs, loaded[:served], strict=True),
        *zip(settings.shadow, loaded[served:], strict=True),
    ]

    def open_registry() -> Registry:
        if registry is not None:
            return registry
        from tabserve.artifacts.registry import open_registry as open_

        return open_(settings)

    state.poller = Poller(
        settings, tracked, open_registry, owned=registry is None, board=ReloadBoard.from_env()
    )
    state.poller.start()
