"""A bounded closed-loop load of gRPC ModelInfer against `tabserve serve --grpc-port`.

`concurrency` grpc.aio callers each send the lecture's flower as tritonclient does (one FP32
[1, 4] tensor in `raw_input_contents`), wait for the answer, check it is class 2, and send
again, until `duration_s` passes or `max_requests` are sent. Callers are spread over several
channels, each its own TCP connection (local subchannel pool), so SO_REUSEPORT spreads them
over the workers as separate HTTP clients would be. The result is a `bench.load.LoadResult`,
the same record wrk's points produce, so `report.py` can print it as a row.

The client is Python in one process, and it takes one of the two cores: `ceiling, grpc.aio`
(grpc_ceiling.py, a servicer that answers a constant) is driven by this same client, so the
two rows compare servers under the same load.

    .venv/bin/python bench/grpc_load.py --target 127.0.0.1:9001 --duration 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

# Run as a script (`python bench/grpc_load.py`): import the bench as the package it is.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench.load import LoadResult  # noqa: E402
from tabserve.serving.grpc.protos import grpc_predict_v2_pb2 as pb  # noqa: E402
from tabserve.serving.grpc.protos.grpc_predict_v2_pb2_grpc import (  # noqa: E402
    GRPCInferenceServiceStub,
)

FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's example: class 2
EXPECTED_LABEL = 2
CONCURRENCY = (1, 16, 64)
MAX_CHANNELS = 8
WARMUP_S = 0.5
CALL_TIMEOUT_S = 10.0


def flower_request(model: str = "iris") -> pb.ModelInferRequest:
    """The lecture's flower as tritonclient.grpc sends it: FP32 [1, 4] in raw_input_contents."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.array([FLOWER], dtype="<f4").tobytes())
    request.outputs.add(name="predict")
    return request


def _label(response: pb.ModelInferResponse) -> int | None:
    if not response.raw_output_contents:
        return None
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    return int(labels[0]) if len(labels) == 1 else None


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    wrong: int = 0
    rpc_errors: int = 0
    first_bad: str = ""


async def _caller(
    stub: GRPCInferenceServiceStub,
    request: pb.ModelInferRequest,
    deadline: float,
    budget: list[int],
    tally: _Tally,
) -> None:
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            response = await stub.ModelInfer(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            tally.rpc_errors += 1
            tally.first_bad = tally.first_bad or f"{error.code().name}: {error.details()}"
            continue
        tally.latencies.append(time.perf_counter() - started)
        label = _label(response)
        if label != EXPECTED_LABEL:
            tally.wrong += 1
            tally.first_bad = tally.first_bad or f"predict = {label!r}"


def server_ready(target: str, timeout_s: float = 1.0) -> bool:
    """Whether a gRPC server answers ServerReady with ready at `target` (one bounded call)."""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = GRPCInferenceServiceStub(channel).ServerReady(
                pb.ServerReadyRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(answer.ready)


async def wait_ready(target: str, timeout_s: float = 60.0) -> None:
    """Poll ServerReady until every worker that answers says ready (bounded)."""
    deadline = time.perf_counter() + timeout_s
    while not await asyncio.to_thread(server_ready, target, 2.0):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gRPC server at {target} not ready after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def run_point(
    target: str,
    concurrency: int,
    duration_s: float,
    *,
    model: str = "iris",
    max_requests: int = 1_000_000,
) -> LoadResult:
    """One load point: `concurrency` closed-loop callers for `duration_s` (after a warm-up)."""
    await wait_ready(target)
    request = flower_request(model)
    options = [("grpc.use_local_subchannel_pool", 1)]  # one TCP connection per channel
    channels = [
        grpc.aio.insecure_channel(target, options=options)
        for _ in range(min(concurrency, MAX_CHANNELS))
    ]
    try:
        stubs = [GRPCInferenceServiceStub(channel) for channel in channels]
        warm = _Tally()
        warm_until = time.perf_counter() + WARMUP_S
        await asyncio.gather(*(_caller(stub, request, warm_until, [50], warm) for stub in stubs))
        tally = _Tally()
        budget = [max_requests]
        started = time.perf_counter()
        deadline = started + duration_s
        await asyncio.gather(
            *(
                _caller(stubs[i % len(stubs)], request, deadline, budget, tally)
                for i in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    latencies = np.array(tally.latencies) * 1e3 if tally.latencies else np.array([0.0])
    return LoadResult(
        concurrency=concurrency,
        requests=len(tally.latencies) + tally.rpc_errors,
        duration_s=elapsed,
        p50_ms=float(np.percentile(latencies, 50)),
        p99_ms=float(np.percentile(latencies, 99)),
        mismatches=tally.wrong + tally.rpc_errors,
        socket_errors=0,
        first_bad=tally.first_bad,
    )


def run(
    target: str,
    duration_s: float,
    levels: tuple[int, ...] = CONCURRENCY,
    *,
    model: str = "iris",
) -> list[LoadResult]:
    """Every concurrency point in turn, each in a fresh event loop (what run.py calls)."""
    return [asyncio.run(run_point(target, c, duration_s, model=model)) for c in levels]


def main(argv: list[str] | None = None) -> int:
    """Drive a running server's gRPC port and print one line per concurrency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="host:port of `tabserve serve --grpc-port`")
    parser.add_argument("--model", default="iris")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per point")
    parser.add_argument("--levels", default="1,16,64", help="comma-separated concurrencies")
    args = parser.parse_args(argv)
    levels = tuple(int(c) for c in args.levels.split(","))
    print("| c | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for load in run(args.target, args.duration, levels, model=args.model):
        print(
            f"| {load.concurrency} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} "
            f"| {load.errors} |",
            flush=True,
        )
        if load.first_bad:
            print(f"first error: {load.first_bad}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
