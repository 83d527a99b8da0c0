"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), off unless --grpc-port.

`start_grpc(services, settings, port)` runs it in a worker's event loop beside the HTTP app;
the RPCs share the REST path: the V2 codec, the model's schema, the batcher and the runtime.
`protos/` holds the service definition and its generated modules (`protos/generate.sh`).
"""

from __future__ import annotations

from tabserve.serving.grpc.server import GrpcHandle, start_grpc

__all__ = ["GrpcHandle", "start_grpc"]
