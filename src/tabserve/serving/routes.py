"""Thin handlers: pick the codec, call inference, map errors. Each is a raw ASGI endpoint.

Handlers take `(state, scope, receive, send)`; `Endpoint` wraps one with its route template
(for metrics) and turns tabserve errors into their JSON answers. No Request object is built
per request: on the hot path every layer shows in the benchmark.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from tabserve.errors import (
    ModelNotFoundError,
    OverloadedError,
    TabserveError,
    UnsupportedMediaError,
    ValidationError,
)
from tabserve.serving import bodies, metrics
from tabserve.serving.protocols import kserve_v1, lecture, mlflow, oip_v2, triton_binary
from tabserve.serving.responses import JSON, Send, encode, error_body, send_error, send_response
from tabserve.serving.validation import invalid

if TYPE_CHECKING:
    from tabserve.serving.app import ServingState
    from tabserve.serving.inference import ModelService

__all__ = ["Endpoint", "Handler"]

Scope = MutableMapping[str, Any]
Receive = bodies.Receive
Handler = Callable[["ServingState", Scope, Receive, Send], Awaitable[None]]

_RETRY = [(b"retry-after", b"1")]
_NOT_READY_HEADERS = _RETRY


class Endpoint:
    """A raw ASGI endpoint: one handler, the serving state and the route template."""

    def __init__(self, state: ServingState, handler: Handler, template: str) -> None:
        self.state = state
        self.handler = handler
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.handler(self.state, scope, receive, send)
        except TabserveError as error:
            if isinstance(error, ValidationError):
                model = scope.get("path_params", {}).get("name") or self.state.default_name or ""
                metrics.count_validation_failure(model, getattr(error, "reason", "invalid"))
            headers = _RETRY if isinstance(error, OverloadedError) else ()
            await send_error(send, error, headers)


# -- helpers ---------------------------------------------------------------------------------


def _service(state: ServingState, scope: Scope) -> ModelService:
    params = scope["path_params"]
    return state.service(params["name"], params.get("version"))


def _ready_service(state: ServingState, scope: Scope) -> ModelService:
    service = _service(state, scope)
    if not service.ready:
        raise OverloadedError(f"model {service.name} is still loading: retry in a moment")
    return service


def _ids(scope: Scope) -> tuple[str, str | None]:
    return scope.get("tabserve.request_id", ""), scope.get("tabserve.client_request_id")


def _version_header(version: int | str) -> tuple[bytes, bytes]:
    return (b"x-model-version", str(version).encode())


async def _json_body(scope: Scope, receive: Receive, state: ServingState) -> bytes:
    return await bodies.read_body(scope, receive, state.settings.max_body_bytes)


# -- the lecture's contract ------------------------------------------------------------------


async def lecture_get(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /?feature=value...` (default model) and `GET /models/NAME?...`."""
    name = scope["path_params"].get("name")
    service = state.lecture_service(name)
    if not service.ready:
        raise OverloadedError(f"model {service.name} is still loading: retry in a moment")
    try:
        rows = lecture.decode(service.schema, scope["query_string"])
    except lecture.LectureError as error:
        metrics.count_validation_failure(service.name, error.reason)
        await send_response(send, 422, error.body, lecture.CONTENT_TYPE)
        return
    request_id, client_id = _ids(scope)
    prediction, manifest = await service.predict(
        rows, request_id=request_id, client_request_id=client_id
    )
    scope["tabserve.served"] = manifest  # the access log names the model and version
    await send_response(
        send,
        200,
        lecture.encode(prediction),
        lecture.CONTENT_TYPE,
        (_version_header(manifest.version),),
    )


# -- KServe V1 -------------------------------------------------------------------------------


async def _v1_predict(
    state: ServingState, scope: Scope, receive: Receive, send: Send, proba: bool
) -> None:
    service = _ready_service(state, scope)
    bodies.require_json(scope)
    body = bodies.decode_json(await _json_body(scope, receive, state))
    rows = kserve_v1.decode(service.schema, body)
    want = proba or kserve_v1.wants_proba(body)
    if want and not service.classifier:
        raise invalid(
            ("parameters", "probabilities"),
            "this model is a regressor: it has no class probabilities",
            "no_proba",
        )
    request_id, client_id = _ids(scope)
    prediction, manifest = await service.predict(
        rows, request_id=request_id, client_request_id=client_id
    )
    scope["tabserve.served"] = manifest  # the access log names the model and version
    await send_response(
        send,
        200,
        encode(kserve_v1.encode(prediction, want)),
        JSON,
        (_version_header(manifest.version),),
    )


async def v1_predict(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v1/models/NAME:predict`."""
    await _v1_predict(state, scope, receive, send, proba=False)


async def v1_predict_proba(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v1/models/NAME:predict_proba`."""
    await _v1_predict(state, scope, receive, send, proba=True)


async def v1_model(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v1/models/NAME`: the ready state."""
    verb = scope["path_params"]["name"].rpartition(":")[2]
    if verb in ("predict", "predict_proba") and ":" in scope["path_params"]["name"]:
        # GET on a predict URL matches this route too (a name never holds ':'): 405, not 404.
        error = TabserveError(f"GET is not allowed on :{verb}: use POST")
        await send_response(send, 405, error_body(error), headers=[(b"allow", b"POST")])
        return
    await _model_ready(_service(state, scope), send)


async def _model_ready(service: ModelService, send: Send) -> None:
    """`{"name", "ready"}`: 200 when the model is ready, else 503 (V1 and V2 alike)."""
    await send_response(
        send,
        200 if service.ready else 503,
        encode({"name": service.name, "ready": service.ready}),
    )


# -- Open Inference Protocol V2 --------------------------------------------------------------


async def v2_server(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v2`: server metadata."""
    await send_response(send, 200, encode(oip_v2.server_metadata()))


async def v2_live(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v2/health/live`: 200 as soon as the process serves."""
    await send_response(send, 200, b'{"live":true}')


async def v2_ready(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v2/health/ready`: 200 once every model is loaded and self-tested."""
    ready = state.ready
    await send_response(
        send,
        200 if ready else 503,
        b'{"ready":true}' if ready else b'{"ready":false}',
        JSON,
        () if ready else _NOT_READY_HEADERS,
    )


async def v2_model(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v2/models/NAME[/versions/V]`: inputs, outputs, classes."""
    service = _service(state, scope)
    await send_response(send, 200, encode(oip_v2.metadata(service.manifest)))


async def v2_model_ready(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /v2/models/NAME[/versions/V]/ready`."""
    await _model_ready(_service(state, scope), send)


async def v2_infer(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v2/models/NAME[/versions/V]/infer`: JSON or Triton binary tensors, maybe compressed."""
    service = _ready_service(state, scope)
    kind = bodies.media_type(scope)
    header_length = triton_binary.parse_header_length(
        _text(bodies.header(scope, b"inference-header-content-length"))
    )
    if kind is not None and header_length is None:
        bodies.require_json(scope)
    elif kind is not None and kind not in ("application/json", "application/octet-stream"):
        raise UnsupportedMediaError(
            f"Content-Type {kind!r} is not accepted here: send application/json, or "
            "application/octet-stream with Inference-Header-Content-Length",
            [{"loc": ["header", "Content-Type"], "msg": "unsupported media type"}],
        )
    limit = state.settings.max_body_bytes
    body = await bodies.read_body(scope, receive, limit)
    encoding = bodies.header(scope, b"content-encoding")
    if encoding is not None:
        body = triton_binary.decompress(body, _text(encoding), limit)
    head, tail = triton_binary.split_body(body, header_length)
    request = bodies.decode_json(head)
    rows = oip_v2.decode(service.schema, request, tail)
    if isinstance(request, dict):
        oip_v2.requested(service.manifest, request)  # unknown outputs: 422 before predicting
    request_id, client_id = _ids(scope)
    prediction, manifest = await service.predict(
        rows, request_id=request_id, client_request_id=client_id
    )
    scope["tabserve.served"] = manifest  # the access log names the model and version
    payload, json_length = oip_v2.encode(manifest, prediction, request)
    headers = [_version_header(manifest.version)]
    content_type = JSON
    if json_length is not None:
        headers.append((b"inference-header-content-length", str(json_length).encode()))
        content_type = b"application/octet-stream"
    await send_response(send, 200, payload, content_type, headers)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


# -- MLflow ----------------------------------------------------------------------------------


async def invocations(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /invocations`: MLflow's scoring endpoint on the default model."""
    service = state.lecture_service(None)
    if not service.ready:
        raise OverloadedError(f"model {service.name} is still loading: retry in a moment")
    kind = bodies.media_type(scope)
    body = await _json_body(scope, receive, state)
    if kind == "text/csv":
        rows = mlflow.decode_csv(service.schema, body)
    else:
        bodies.require_json(scope)
        rows = mlflow.decode_json(service.schema, bodies.decode_json(body))
    request_id, client_id = _ids(scope)
    prediction, manifest = await service.predict(
        rows, request_id=request_id, client_request_id=client_id
    )
    scope["tabserve.served"] = manifest  # the access log names the model and version
    await send_response(
        send,
        200,
        encode({"predictions": prediction.labels.tolist()}),
        JSON,
        (_version_header(manifest.version),),
    )


async def ping(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /ping` and `/health`: MLflow's readiness."""
    ready = state.ready
    await send_response(send, 200 if ready else 503, b"\n", b"text/plain; charset=utf-8")


async def version(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /version`: the served models' references (never a software version)."""
    refs = [s.manifest.ref for s in state.loaded]  # every loaded version, several per name
    await send_response(send, 200, encode({"models": refs}))


# -- monitoring ------------------------------------------------------------------------------


async def feedback(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v1/models/NAME/feedback`: true labels for logged predictions, by request id and row."""
    import asyncio

    from tabserve.monitoring.feedback import parse_items, store_feedback

    name = scope["path_params"]["name"]
    state.service(name)  # 404 for a model not served here
    bodies.require_json(scope)
    try:
        items = parse_items(bodies.decode_json(await _json_body(scope, receive, state)))
    except ValidationError as error:
        # A bad feedback body is no refused prediction: answered here, so it stays out of
        # tabserve_validation_failures_total (the route's 422s show in the request counter).
        await send_error(send, error)
        return
    stored = await asyncio.to_thread(store_feedback, state.settings, name, items)
    await send_response(send, 200, encode({"model": name, "labels": stored}))


# -- operations ------------------------------------------------------------------------------


async def metrics_page(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /metrics`: Prometheus text, aggregated over every worker."""
    body, content_type = metrics.render()
    await send_response(send, 200, body, content_type.encode())


async def openapi_json(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /openapi.json`."""
    await send_response(send, 200, state.openapi())


async def docs_page(state: ServingState, scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /docs`: Swagger UI served from tabserve's own assets."""
    from tabserve.serving.openapi import docs_html

    await send_response(send, 200, docs_html().encode(), b"text/html; charset=utf-8")


def not_found(state: ServingState, name: str) -> ModelNotFoundError:
    """404 naming the models that are served."""
    served = ", ".join(sorted(state.services)) or "none"
    return ModelNotFoundError(f"model {name!r} is not served here; models: {served}")
