"""Start and stop the gRPC server inside a serving worker's event loop.

Called from the app's lifespan in each worker, after the fork (gRPC's core is not fork-safe,
so nothing gRPC exists in the master). Every worker binds the same port with SO_REUSEPORT,
as the workers' HTTP sockets do, and the kernel spreads connections over them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import grpc
from tabserve import logging as tlog
from tabserve.errors import UsageError
from tabserve.serving.grpc.protos.grpc_predict_v2_pb2_grpc import (
    add_GRPCInferenceServiceServicer_to_server,
)
from tabserve.serving.grpc.service import InferenceServicer
from tabserve.settings import Settings

if TYPE_CHECKING:
    from tabserve.serving.inference import ModelService

__all__ = ["GrpcHandle", "start_grpc"]

log = tlog.get_logger("tabserve.grpc")


class GrpcHandle:
    """A running gRPC server in this worker: its port, and `stop(grace)`."""

    def __init__(self, server: grpc.aio.Server, port: int, servicer: InferenceServicer) -> None:
        self.server = server
        self.port = port
        self.servicer = servicer

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs, let those in flight finish for up to `grace` seconds, then close."""
        await self.server.stop(grace)


def address(host: str, port: int) -> str:
    """`host:port` as gRPC takes it (IPv6 literals in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


async def start_grpc(
    services: Callable[[], Mapping[str, ModelService]],
    settings: Settings,
    port: int,
    *,
    ready: Callable[[], bool] | None = None,
    versions: Callable[[str, str], ModelService] | None = None,
) -> GrpcHandle:
    """Serve `inference.GRPCInferenceService` on settings.host:port in the running event loop.

    `services` is called on every RPC, so models loaded or swapped later are seen; `ready`
    (default: every service ready) answers ServerReady; `versions(name, version)` finds a
    loaded version other than the current one. Port 0 picks a free port.
    """
    options = [
        ("grpc.so_reuseport", 1),  # the default, stated: every worker binds this port
        # The same bound as the HTTP body limit (gRPC's own default is 4 MiB).
        ("grpc.max_receive_message_length", settings.max_body_bytes),
    ]
    server = grpc.aio.server(options=options)
    servicer = InferenceServicer(services, settings, ready, versions)
    # The generated registration is untyped; it maps the six method paths to the servicer.
    add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    where = address(settings.host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as error:
        raise UsageError(
            f"cannot listen for gRPC on {where} ({error}): choose a free --grpc-port"
        ) from error
    if bound == 0:
        raise UsageError(f"cannot listen for gRPC on {where}: choose a free --grpc-port")
    await server.start()
    log.info("grpc listening", address=address(settings.host, bound))
    return GrpcHandle(server, bound, servicer)
