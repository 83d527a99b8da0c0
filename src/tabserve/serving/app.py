"""`create_app(settings, registry)`: the routes, one pure ASGI middleware, a lifespan that loads models.

The lifespan runs in each worker after the fork: it starts loading every model in a thread
and returns at once, so `/v2/health/live` answers while `/v2/health/ready` says 503 until each
model is loaded and self-tested. The master (server.py) has already resolved and verified
the artifacts and hands their folders over as `artifacts`; tests hand in loaded runtimes as
`models`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from tabserve import logging as tlog
from tabserve.errors import ModelNotFoundError, OverloadedError, TabserveError
from tabserve.serving import metrics, routes
from tabserve.serving.auth import with_auth
from tabserve.serving.inference import ModelService, PredictionSink, load_runtime
from tabserve.serving.middleware import ServingMiddleware
from tabserve.serving.responses import encode, error_body, send_response
from tabserve.settings import Settings
from tabserve.types import Manifest, Runtime

if TYPE_CHECKING:
    from tabserve.artifacts.registry import Registry

__all__ = ["ServingState", "create_app", "resolve_artifacts"]

log = tlog.get_logger("tabserve.serving")

Scope = MutableMapping[str, Any]


def resolve_artifacts(settings: Settings, registry: Registry) -> list[tuple[Manifest, Path]]:
    """Each model to serve as a verified local folder (every model's newest/production when none named)."""
    refs = list(settings.models)
    if not refs:
        refs = sorted({record.name for record in registry.list()})
        if not refs:
            raise ModelNotFoundError(
                f"no models in {registry.where}: train one with `tabserve train` or import one "
                "with `tabserve import`"
            )
    artifacts = []
    for ref in refs:
        record = registry.resolve(ref)
        artifacts.append(registry.fetch(record.ref))
    return artifacts


class ServingState:
    """The models this worker serves and whether they are ready."""

    def __init__(self, settings: Settings, sink: PredictionSink | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.services: dict[str, ModelService] = {}
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
            and bool(self.services)
            and all(s.ready for s in self.services.values())
        )

    def add(self, service: ModelService) -> None:
        """Serve one more model (the first added is the default when none is named)."""
        self.services[service.name] = service
        self._openapi = None

    def service(self, name: str, version: str | None = None) -> ModelService:
        """The service for a model name (and version, when the URL names one), else 404."""
        service = self.services.get(name)
        if service is None:
            if self.expected > 0 and self.failed is None:
                raise OverloadedError("the models are still loading: retry in a moment")
            raise routes.not_found(self, name)
        if version is not None and version != service.version:
            raise ModelNotFoundError(
                f"version {version!r} of {name} is not served here; served: {service.version}"
            )
        return service

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
        for service in self.services.values():
            service.close()


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
) -> None:
    """Load every runtime (in a thread), self-test it, and start serving it."""
    threads = settings.intra_op_threads()
    for manifest, path in artifacts:
        started = time.perf_counter()
        runtime = load_runtime(path, manifest, threads=threads, settings=settings)
        service = ModelService(manifest, runtime, settings, state.sink)
        state.add(service)
        state.expected -= 1
        seconds = time.perf_counter() - started
        metrics.set_model_loaded(manifest.name, manifest.version, seconds)
        log.info(
            "model ready", model=manifest.name, version=manifest.version, seconds=round(seconds, 3)
        )


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
        loader: asyncio.Future[Any] | None = None
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
            state.expected = len(todo)
            loader = asyncio.ensure_future(asyncio.to_thread(_load, state, todo, settings))
            loader.add_done_callback(lambda f: _loaded(state, f))
        grpc_handle = None
        if settings.grpc_port is not None:
            from tabserve.serving.grpc import start_grpc  # after the fork: gRPC is not fork-safe

            grpc_handle = await start_grpc(
                lambda: state.services, settings, settings.grpc_port, ready=lambda: state.ready
            )
        try:
            yield
        finally:
            if grpc_handle is not None:
                await grpc_handle.stop(min(5.0, settings.graceful_timeout))
            if loader is not None and not loader.done():
                with contextlib.suppress(BaseException):
                    await loader
            if predlog is not None:
                await predlog.close()
            state.close()

    # No Starlette application object around the router: its two exception middlewares
    # build a Request per request and showed as ~15% of a profile; ServingMiddleware is the
    # one layer, and the router's own 404/405 answer in JSON.
    router = Router(routes=_routes(state), default=_not_found, lifespan=lifespan)
    app = ServingMiddleware(
        with_auth(router, settings),  # the router itself when auth is off
        max_in_flight=settings.max_in_flight,
        timeout=settings.request_timeout,
        access_log=settings.access_log,
    )
    app.serving = state
    return app


def _loaded(state: ServingState, future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        state.failed = "cancelled"
        return
    error = future.exception()
    if error is not None:
        state.failed = str(error)
        tlog.log_error("model load failed", error)
