"""The `inference.GRPCInferenceService` servicer: thin handlers over the same ModelService as REST.

Each RPC only translates: find the service, decode through `codec` (the REST V2 codec and
the model's schema underneath), `await service.predict(...)`, encode. tabserve errors become
gRPC status codes at one place, `_abort`: what a client sent wrong is INVALID_ARGUMENT, an
unknown model or version NOT_FOUND, load shedding or a model still loading UNAVAILABLE; only a
bug answers INTERNAL, with no details (they go to the log).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

import grpc
from tabserve import logging as tlog
from tabserve.errors import (
    ArtifactError,
    DatabaseError,
    ModelNotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    RequestError,
    RequestTimeoutError,
    TabserveError,
    UsageError,
    ValidationError,
)
from tabserve.serving import metrics
from tabserve.serving.grpc import codec
from tabserve.serving.grpc.protos import grpc_predict_v2_pb2 as pb
from tabserve.serving.grpc.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer
from tabserve.serving.protocols import oip_v2
from tabserve.settings import Settings

if TYPE_CHECKING:
    from tabserve.serving.inference import ModelService

__all__ = ["STATUS_CODES", "InferenceServicer", "status_code"]

Services = Callable[[], Mapping[str, "ModelService"]]

SERVICE_NAME = "inference.GRPCInferenceService"

# tabserve error class -> gRPC status; the most specific class in an error's MRO wins.
STATUS_CODES: dict[type[TabserveError], grpc.StatusCode] = {
    ValidationError: grpc.StatusCode.INVALID_ARGUMENT,
    PayloadTooLargeError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RequestTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    OverloadedError: grpc.StatusCode.UNAVAILABLE,
    RequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UsageError: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    DatabaseError: grpc.StatusCode.UNAVAILABLE,
    ArtifactError: grpc.StatusCode.UNAVAILABLE,
}

_MAX_ID = 128


def status_code(error: TabserveError) -> grpc.StatusCode:
    """The gRPC status for a tabserve error (INTERNAL only for errors no client causes)."""
    for cls in type(error).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _sane(value: str) -> bool:
    return 0 < len(value) <= _MAX_ID and value.isascii() and value.isprintable()


class InferenceServicer(GRPCInferenceServiceServicer):
    """ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer."""

    def __init__(
        self,
        services: Services,
        settings: Settings,
        ready: Callable[[], bool] | None = None,
        versions: Callable[[str, str], ModelService] | None = None,
    ) -> None:
        self.services = services
        self.settings = settings
        self._ready = ready
        self._versions = versions  # another loaded version of a name (`serve iris:3 iris:4`)
        self.in_flight = 0
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    # -- helpers ------------------------------------------------------------------------------

    def _service(self, name: str, version: str) -> ModelService:
        services = self.services()
        service = services.get(name)
        if service is None and not self._server_ready():
            # Models appear in `services` as they finish loading: not an unknown name yet.
            raise OverloadedError(
                f"model {name!r} is not loaded yet: the server is still loading its models; "
                "retry in a moment"
            )
        if service is None:
            served = ", ".join(sorted(services)) or "none"
            raise ModelNotFoundError(f"model {name!r} is not served here; models: {served}")
        if version and version != service.version:
            if self._versions is not None:
                return self._versions(name, version)
            raise ModelNotFoundError(
                f"version {version!r} of {name} is not served here; served: {service.version}"
            )
        return service

    def _server_ready(self) -> bool:
        if self._ready is not None:
            return self._ready()
        services = self.services()
        return bool(services) and all(s.ready for s in services.values())

    async def _abort(self, context: grpc.aio.ServicerContext, error: TabserveError) -> NoReturn:
        await context.abort(status_code(error), error.message)
        raise AssertionError("context.abort returns only by raising")  # pragma: no cover

    # -- health and metadata ------------------------------------------------------------------

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        """Live as soon as the worker answers."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready once every model is loaded and self-tested."""
        return pb.ServerReadyResponse(ready=self._server_ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Whether one model (and version, when named) is ready; NOT_FOUND when not served."""
        try:
            service = self._service(request.name, request.version)
        except OverloadedError:
            return pb.ModelReadyResponse(ready=False)  # still loading: not ready, not unknown
        except TabserveError as error:
            await self._abort(context, error)
        return pb.ModelReadyResponse(ready=service.ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """The server's name and protocol version (as `GET /v2`)."""
        meta = oip_v2.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"])

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Inputs and outputs of a model, the same as `GET /v2/models/NAME`."""
        try:
            service = self._service(request.name, request.version)
        except TabserveError as error:
            await self._abort(context, error)
        return codec.metadata(service.manifest)

    # -- inference ----------------------------------------------------------------------------

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Validate, batch and predict through the model's ModelService, like REST V2 infer."""
        started = time.perf_counter()
        status = 200
        if self.in_flight >= self.settings.max_in_flight:
            status = 503
            self._observe(status, started)
            await self._abort(
                context,
                OverloadedError(
                    f"the server is at its limit of {self.settings.max_in_flight} requests in "
                    "flight per worker: retry after a moment"
                ),
            )
        self.in_flight += 1
        try:
            # --request-timeout is enforced where a request waits: in the batcher (504 in REST).
            return await self._infer(request, context)
        except TabserveError as error:
            status = int(error.status)
            if isinstance(error, ValidationError):
                metrics.count_validation_failure(
                    request.model_name, getattr(error, "reason", "invalid")
                )
            await self._abort(context, error)
        except asyncio.CancelledError:
            status = 499  # the client went away or its deadline passed
            raise
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            status = 500
            tlog.log_error("unhandled error", error, rpc=f"{SERVICE_NAME}/ModelInfer")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error: the server logged it")
        finally:
            self.in_flight -= 1
            self._observe(status, started)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _infer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        service = self._service(request.model_name, request.model_version)
        if not service.ready:
            raise OverloadedError(f"model {service.name} is still loading: retry in a moment")
        rows = codec.decode(service.schema, request)
        names = codec.requested(service.manifest, request)  # unknown outputs: before predicting
        server_id = f"{self._prefix}{next(self._counter):08x}"
        client_id = self._client_id(request, context)
        prediction, manifest = await service.predict(
            rows, request_id=server_id, client_request_id=client_id
        )
        context.set_trailing_metadata(
            (("x-request-id", client_id or server_id), ("x-model-version", str(manifest.version)))
        )
        return codec.encode(
            manifest,
            prediction,
            names,
            request_id=request.id,
            raw=bool(request.raw_input_contents),
        )

    @staticmethod
    def _client_id(request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> str | None:
        """The client's request id: `x-request-id` metadata, else the request's own `id`."""
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id" and isinstance(value, str) and _sane(value):
                return value
        return request.id if _sane(request.id) else None

    def _observe(self, status: int, started: float) -> None:
        metrics.observe_request(
            f"/{SERVICE_NAME}/ModelInfer", "GRPC", status, time.perf_counter() - started
        )
