"""The gRPC ceiling: a grpc.aio servicer that answers every ModelInfer with the lecture's class.

Run in one process on uvloop, as each tabserve worker runs its gRPC server (grpc.aio in the
worker's event loop), it measures what a unary call through grpcio costs on this machine with
no model, no validation and no metrics: the most a Python gRPC server can do here.

    .venv/bin/python bench/grpc_ceiling.py --port 9001
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import uvloop

# Run as a script (`python bench/grpc_ceiling.py`): import the bench as the package it is.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench.grpc_load import EXPECTED_LABEL  # noqa: E402
from tabserve.serving.grpc.protos import grpc_predict_v2_pb2 as pb  # noqa: E402
from tabserve.serving.grpc.protos.grpc_predict_v2_pb2_grpc import (  # noqa: E402
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)


def constant_answer() -> pb.ModelInferResponse:
    """The answer tabserve gives the lecture's flower: `predict` INT64 [1] = 2, raw contents."""
    response = pb.ModelInferResponse(model_name="iris", model_version="1")
    response.outputs.add(name="predict", datatype="INT64", shape=[1])
    response.raw_output_contents.append(np.array([EXPECTED_LABEL], dtype="<i8").tobytes())
    return response


class ConstantServicer(GRPCInferenceServiceServicer):
    """ModelInfer answers the constant; ServerReady says ready; the rest is grpcio's default."""

    def __init__(self) -> None:
        self.answer = constant_answer()
        self.ready = pb.ServerReadyResponse(ready=True)

    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        return self.answer

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return self.ready


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:port until the process is stopped."""
    server = grpc.aio.server()
    add_GRPCInferenceServiceServicer_to_server(ConstantServicer(), server)  # type: ignore[no-untyped-call]
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen for gRPC on 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    """Parse --port and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
