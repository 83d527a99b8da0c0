"""The OIP gRPC service on a real grpc.aio server, over the same ModelService as REST.

Models come from the serving conftest (`iris`, `mixed`, `regressor`); each test starts a
server on a free 127.0.0.1 port in its own event loop and talks to it with the generated stub.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import msgspec
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from tabserve.errors import (
    ModelNotFoundError,
    OverloadedError,
    RequestTimeoutError,
    TabserveError,
    UsageError,
    ValidationError,
)
from tabserve.runtime.sklearn import SklearnRuntime
from tabserve.serving.grpc import start_grpc
from tabserve.serving.grpc.protos import grpc_predict_v2_pb2 as pb
from tabserve.serving.grpc.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from tabserve.serving.grpc.service import status_code
from tabserve.serving.inference import ModelService
from tabserve.serving.protocols import oip_v2
from tabserve.settings import Settings
from tabserve.types import Manifest

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FLOWER = [7.7, 3.0, 6.1, 2.3]  # the lecture's flower: class 2
SETOSA = [5.1, 3.5, 1.4, 0.2]  # class 0

Scenario = Callable[[GRPCInferenceServiceStub], Awaitable[None]]
Code = grpc.StatusCode


def _settings(**changes: Any) -> Settings:
    return Settings(prediction_log=False, **changes)


def _service(model: tuple[Manifest, Pipeline], settings: Settings) -> ModelService:
    manifest, pipeline = model
    return ModelService(manifest, SklearnRuntime(pipeline, manifest), settings)


@pytest.fixture
def services(
    iris: tuple[Manifest, Pipeline],
    mixed: tuple[Manifest, Pipeline],
    regressor: tuple[Manifest, Pipeline],
) -> Iterator[dict[str, ModelService]]:
    """Three served models: Iris (integer labels), mixed (strings, a category), a regressor."""
    settings = _settings()
    built = {m[0].name: _service(m, settings) for m in (iris, mixed, regressor)}
    yield built
    for service in built.values():
        service.close()


def serve(
    services: dict[str, ModelService],
    scenario: Scenario,
    settings: Settings | None = None,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Run `scenario` against a gRPC server over `services` on a free port."""

    async def main() -> None:
        handle = await start_grpc(lambda: services, settings or _settings(), 0, ready=ready)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                await asyncio.wait_for(scenario(GRPCInferenceServiceStub(channel)), 30)
        finally:
            await handle.stop(1)

    asyncio.run(main())


async def _code(call: Awaitable[Any]) -> tuple[Code, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


def _raw_request(rows: list[list[float]], datatype: str = "FP32", **fields: Any) -> Any:
    array = np.array(rows, dtype={"FP32": "<f4", "FP64": "<f8"}[datatype])
    request = pb.ModelInferRequest(
        model_name="iris", raw_input_contents=[array.tobytes()], **fields
    )
    request.inputs.add(name="input", datatype=datatype, shape=array.shape)
    return request


def _typed_request(rows: list[list[float]], **fields: Any) -> Any:
    request = pb.ModelInferRequest(model_name="iris", **fields)
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[len(rows), len(rows[0])])
    tensor.contents.fp64_contents.extend(v for row in rows for v in row)
    return request


def _bytes_elements(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return items


# -- health and metadata ----------------------------------------------------------------------


def test_live_ready_and_server_metadata(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        meta = await stub.ServerMetadata(pb.ServerMetadataRequest())
        assert (meta.name, meta.version) == ("tabserve", "2")

    serve(services, scenario)


def test_server_not_ready_while_a_model_loads(services: dict[str, ModelService]) -> None:
    services["iris"].ready = False

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="reg"))).ready
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER])))
        assert code == Code.UNAVAILABLE
        assert "still loading" in details

    serve(services, scenario)


def test_a_model_not_loaded_yet_is_unavailable_not_unknown(
    services: dict[str, ModelService],
) -> None:
    loading: dict[str, ModelService] = {}  # models appear here as they finish loading

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER])))
        assert code == Code.UNAVAILABLE
        assert "still loading" in details
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready

    serve(loading, scenario, ready=lambda: False)


def test_ready_callable_answers_server_ready(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready

    serve(services, scenario, ready=lambda: False)


def test_model_ready_by_name_and_version(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="iris", version="1"))).ready
        code, details = await _code(stub.ModelReady(pb.ModelReadyRequest(name="nope")))
        assert code == Code.NOT_FOUND
        assert "'nope' is not served here; models: iris, mixed, reg" in details
        code, details = await _code(stub.ModelReady(pb.ModelReadyRequest(name="iris", version="7")))
        assert code == Code.NOT_FOUND
        assert "version '7' of iris" in details

    serve(services, scenario)


def test_model_metadata_matches_rest(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        for name in ("iris", "mixed", "reg"):
            meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name=name))
            rest = oip_v2.metadata(services[name].manifest)
            assert meta.name == rest["name"]
            assert list(meta.versions) == rest["versions"]
            assert meta.platform == rest["platform"]
            for got, want in ((meta.inputs, rest["inputs"]), (meta.outputs, rest["outputs"])):
                assert [(t.name, t.datatype, list(t.shape)) for t in got] == [
                    (t["name"], t["datatype"], t["shape"]) for t in want
                ]
        iris = await stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"))
        assert [(t.name, t.datatype, list(t.shape)) for t in iris.outputs] == [
            ("predict", "INT64", [-1]),
            ("predict_proba", "FP64", [-1, 3]),
        ]
        code, _ = await _code(stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")))
        assert code == Code.NOT_FOUND

    serve(services, scenario)


# -- inference --------------------------------------------------------------------------------


def test_raw_inputs_answer_raw_outputs(
    services: dict[str, ModelService], iris: tuple[Manifest, Pipeline]
) -> None:
    expected = iris[1].predict_proba(pd.DataFrame([FLOWER, SETOSA], columns=NAMES))

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        response = await stub.ModelInfer(_raw_request([FLOWER, SETOSA], id="req-42"))
        assert (response.model_name, response.model_version, response.id) == (
            "iris",
            "1",
            "req-42",
        )
        assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
            ("predict", "INT64", [2]),
            ("predict_proba", "FP64", [2, 3]),
        ]
        assert not response.outputs[0].HasField("contents")
        labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
        proba = np.frombuffer(response.raw_output_contents[1], dtype="<f8").reshape(2, 3)
        assert labels.tolist() == [2, 0]
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-6)

    serve(services, scenario)


def test_typed_inputs_answer_typed_outputs(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        response = await stub.ModelInfer(_typed_request([FLOWER, SETOSA]))
        assert response.id == ""
        assert not response.raw_output_contents
        assert list(response.outputs[0].contents.int64_contents) == [2, 0]
        proba = np.array(response.outputs[1].contents.fp64_contents).reshape(2, 3)
        assert proba.argmax(axis=1).tolist() == [2, 0]
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    serve(services, scenario)


def test_typed_fp32_and_int_inputs(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
        tensor.contents.fp32_contents.extend(FLOWER)
        response = await stub.ModelInfer(request)
        assert list(response.outputs[0].contents.int64_contents) == [2]
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="input", datatype="INT64", shape=[1, 4])
        tensor.contents.int64_contents.extend([8, 3, 6, 2])
        response = await stub.ModelInfer(request)
        assert list(response.outputs[0].contents.int64_contents) == [2]

    serve(services, scenario)


def test_outputs_select(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        request = _raw_request([FLOWER])
        request.outputs.add(name="predict_proba")
        response = await stub.ModelInfer(request)
        assert [o.name for o in response.outputs] == ["predict_proba"]
        assert len(response.raw_output_contents) == 1
        assert np.frombuffer(response.raw_output_contents[0], "<f8").argmax() == 2
        request = _raw_request([FLOWER])
        request.outputs.add(name="nope")
        code, details = await _code(stub.ModelInfer(request))
        assert code == Code.INVALID_ARGUMENT
        assert "output 'nope' is not produced by this model" in details

    serve(services, scenario)


def test_one_tensor_per_feature_with_bytes_and_string_labels(
    services: dict[str, ModelService],
) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        # typed: FP64 with a NaN (age may be missing) and BYTES categories
        request = pb.ModelInferRequest(model_name="mixed")
        age = request.inputs.add(name="age", datatype="FP64", shape=[2, 1])
        age.contents.fp64_contents.extend([30.0, float("nan")])
        city = request.inputs.add(name="city", datatype="BYTES", shape=[2, 1])
        city.contents.bytes_contents.extend([b"paris", b"lyon"])
        response = await stub.ModelInfer(request)
        assert response.outputs[0].datatype == "BYTES"
        assert list(response.outputs[0].contents.bytes_contents) == [b"yes", b"no"]
        # raw: the same rows, BYTES length-prefixed
        request = pb.ModelInferRequest(model_name="mixed")
        request.inputs.add(name="age", datatype="FP64", shape=[2])
        request.inputs.add(name="city", datatype="BYTES", shape=[2])
        cities = b"".join(struct.pack("<I", len(c)) + c for c in (b"paris", b"lyon"))
        request.raw_input_contents.extend([np.array([30.0, 50.0]).tobytes(), cities])
        response = await stub.ModelInfer(request)
        assert _bytes_elements(response.raw_output_contents[0]) == [b"yes", b"no"]

    serve(services, scenario)


def test_regressor_answers_fp64(
    services: dict[str, ModelService], regressor: tuple[Manifest, Pipeline]
) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        request = pb.ModelInferRequest(model_name="reg")
        tensor = request.inputs.add(name="input", datatype="FP64", shape=[1, 2])
        tensor.contents.fp64_contents.extend([1.0, 2.0])
        response = await stub.ModelInfer(request)
        assert [o.name for o in response.outputs] == ["predict"]
        assert response.outputs[0].datatype == "FP64"
        assert response.outputs[0].contents.fp64_contents[0] == pytest.approx(0.0, abs=1e-9)

    serve(services, scenario)


def test_same_predictions_as_the_service(
    services: dict[str, ModelService], iris: tuple[Manifest, Pipeline]
) -> None:
    from sklearn.datasets import load_iris

    X = load_iris(as_frame=True).data
    X.columns = NAMES

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        response = await stub.ModelInfer(_raw_request(X.to_numpy().tolist(), "FP64"))
        labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
        assert labels.tolist() == iris[1].predict(X).tolist()

    serve(services, scenario)


def test_concurrent_requests_are_batched_and_split_back(
    services: dict[str, ModelService],
) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        flowers = [FLOWER, SETOSA] * 20
        responses = await asyncio.gather(*(stub.ModelInfer(_raw_request([f])) for f in flowers))
        labels = [int(np.frombuffer(r.raw_output_contents[0], "<i8")[0]) for r in responses]
        assert labels == [2, 0] * 20

    serve(services, scenario)


def test_request_id_and_model_version_in_trailing_metadata(
    services: dict[str, ModelService],
) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        call = stub.ModelInfer(_raw_request([FLOWER]), metadata=(("x-request-id", "abc-1"),))
        await call
        trailing = dict(await call.trailing_metadata())
        assert trailing["x-request-id"] == "abc-1"
        assert trailing["x-model-version"] == "1"

    serve(services, scenario)


# -- errors -----------------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, Callable[[], Any], str]] = [
    (
        "wrong width",
        lambda: _raw_request([[1.0, 2.0, 3.0]]),
        "shape [1, 3] does not fit the model",
    ),
    (
        "NaN where not trained with missing",
        lambda: _typed_request([[float("nan"), 3, 6, 2]]),
        "missing",
    ),
    ("infinity", lambda: _typed_request([[float("inf"), 3, 6, 2]]), "finite"),
    ("empty batch", lambda: _empty(), "the batch is empty"),
    (
        "raw size off",
        lambda: _with_raw(b"\x00" * 15),
        "needs 16 bytes",
    ),
    ("unknown input name", lambda: _named("petals"), "'petals' is not known"),
    (
        "count off in typed contents",
        lambda: _short_typed(),
        "has 3 values in contents.fp64_contents",
    ),
    ("raw and typed mixed", lambda: _mixed_raw_typed(), "send one or the other"),
    ("raw entries off", lambda: _two_raw(), "raw_input_contents has 2 entries for 1 inputs"),
    ("unknown datatype", lambda: _datatype("FLOAT"), "unknown datatype 'FLOAT'"),
    ("FP16 typed", lambda: _datatype("FP16"), "FP16 has no typed field"),
    ("no inputs", lambda: pb.ModelInferRequest(model_name="iris"), "at least one tensor"),
    ("INT8 out of range", lambda: _int8_overflow(), "outside INT8's range"),
    ("BYTES where numbers are due", lambda: _bytes_matrix(), "BYTES tensor where numbers are due"),
]


def _empty() -> Any:
    request = pb.ModelInferRequest(model_name="iris", raw_input_contents=[b""])
    request.inputs.add(name="input", datatype="FP32", shape=[0, 4])
    return request


def _with_raw(raw: bytes) -> Any:
    request = pb.ModelInferRequest(model_name="iris", raw_input_contents=[raw])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    return request


def _named(name: str) -> Any:
    request = _raw_request([FLOWER])
    request.inputs[0].name = name
    return request


def _short_typed() -> Any:
    request = _typed_request([FLOWER])
    del request.inputs[0].contents.fp64_contents[-1]
    return request


def _mixed_raw_typed() -> Any:
    request = _typed_request([FLOWER])
    request.raw_input_contents.append(np.array(FLOWER, "<f8").tobytes())
    return request


def _two_raw() -> Any:
    request = _raw_request([FLOWER])
    request.raw_input_contents.append(b"")
    return request


def _datatype(datatype: str) -> Any:
    request = _typed_request([FLOWER])
    request.inputs[0].datatype = datatype
    return request


def _int8_overflow() -> Any:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="INT8", shape=[1, 4])
    tensor.contents.int_contents.extend([300, 3, 6, 2])
    return request


def _bytes_matrix() -> Any:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="BYTES", shape=[1, 4])
    tensor.contents.bytes_contents.extend([b"1", b"2", b"3", b"4"])
    return request


@pytest.mark.parametrize(
    ("build", "message"), [(b, m) for _, b, m in BAD_REQUESTS], ids=[i for i, _, _ in BAD_REQUESTS]
)
def test_bad_input_is_invalid_argument(
    services: dict[str, ModelService], build: Callable[[], Any], message: str
) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(build()))
        assert code == Code.INVALID_ARGUMENT
        assert message in details

    serve(services, scenario)


def test_unseen_category_names_the_feature(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        request = pb.ModelInferRequest(model_name="mixed")
        request.inputs.add(name="age", datatype="FP64", shape=[1]).contents.fp64_contents.append(
            30.0
        )
        request.inputs.add(name="city", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
            b"rome"
        )
        code, details = await _code(stub.ModelInfer(request))
        assert code == Code.INVALID_ARGUMENT
        assert "'rome' is a category of city the model never saw" in details

    serve(services, scenario)


def test_unknown_model_and_version_are_not_found(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        request = _raw_request([FLOWER])
        request.model_name = "nope"
        code, details = await _code(stub.ModelInfer(request))
        assert code == Code.NOT_FOUND
        assert "models: iris, mixed, reg" in details
        request = _raw_request([FLOWER], model_version="9")
        code, _ = await _code(stub.ModelInfer(request))
        assert code == Code.NOT_FOUND

    serve(services, scenario)


def test_overload_is_unavailable(services: dict[str, ModelService]) -> None:
    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER])))
        assert code == Code.UNAVAILABLE
        assert "limit of 1 requests in flight" in details

    settings = _settings(max_in_flight=1)
    original = services["iris"].predict

    async def slow(rows: np.ndarray, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)
        return await original(rows, **kwargs)

    async def both(stub: GRPCInferenceServiceStub) -> None:
        first = asyncio.ensure_future(stub.ModelInfer(_raw_request([FLOWER])))
        await asyncio.sleep(0.2)  # the first is in flight, holding the only slot
        await scenario(stub)
        assert np.frombuffer((await first).raw_output_contents[0], "<i8").tolist() == [2]

    services["iris"].predict = slow  # type: ignore[method-assign]
    serve(services, both, settings)


def test_a_failing_sink_is_unavailable_not_internal(services: dict[str, ModelService]) -> None:
    class FullLog:
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise OverloadedError("the prediction log is full: retry later")

    services["iris"].sink = FullLog()

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER])))
        assert code == Code.UNAVAILABLE
        assert "prediction log is full" in details

    serve(services, scenario)


def test_a_bug_is_internal_without_details(services: dict[str, ModelService]) -> None:
    async def broken(rows: np.ndarray, **kwargs: Any) -> Any:
        raise KeyError("/secret/path")

    services["iris"].predict = broken  # type: ignore[method-assign]

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER])))
        assert code == Code.INTERNAL
        assert details == "internal error: the server logged it"

    serve(services, scenario)


def test_status_codes_for_the_error_tree() -> None:
    assert status_code(ValidationError("x")) == Code.INVALID_ARGUMENT
    assert status_code(OverloadedError("x")) == Code.UNAVAILABLE
    assert status_code(RequestTimeoutError("x")) == Code.DEADLINE_EXCEEDED
    assert status_code(TabserveError("x")) == Code.INTERNAL


def test_a_slow_prediction_is_deadline_exceeded(iris: tuple[Manifest, Pipeline]) -> None:
    manifest, pipeline = iris

    class Slow(SklearnRuntime):
        def predict(self, rows: np.ndarray) -> Any:
            time.sleep(0.3)
            return super().predict(rows)

    settings = _settings(request_timeout=0.05)
    service = ModelService(manifest, Slow(pipeline, manifest), settings)

    async def scenario(stub: GRPCInferenceServiceStub) -> None:
        code, details = await _code(stub.ModelInfer(_raw_request([FLOWER, SETOSA])))
        assert code == Code.DEADLINE_EXCEEDED
        assert "--request-timeout" in details

    try:
        serve({"iris": service}, scenario, settings)
    finally:
        service.close()


def test_workers_share_the_port(services: dict[str, ModelService]) -> None:
    async def main() -> None:
        first = await start_grpc(lambda: services, _settings(), 0)
        second = await start_grpc(lambda: services, _settings(), first.port)  # SO_REUSEPORT
        try:
            assert second.port == first.port
            await first.stop(0)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
                stub = GRPCInferenceServiceStub(channel)
                response = await stub.ModelInfer(_raw_request([FLOWER]))
                assert np.frombuffer(response.raw_output_contents[0], "<i8").tolist() == [2]
        finally:
            await second.stop(0)

    asyncio.run(main())


def test_an_address_that_cannot_be_bound_is_a_clear_error(
    services: dict[str, ModelService],
) -> None:
    async def main() -> None:
        with pytest.raises(UsageError, match="choose a free --grpc-port"):
            await start_grpc(lambda: services, _settings(host="256.0.0.1"), 0)

    asyncio.run(main())


def test_model_infer_reaches_another_loaded_version(iris: tuple[Manifest, Pipeline]) -> None:
    """`serve iris:1 iris:2`: ModelInfer with model_version "2" is answered by version 2."""
    manifest, pipeline = iris
    settings = _settings()
    current = _service(iris, settings)
    second = msgspec.structs.replace(manifest, version=manifest.version + 1)
    other = ModelService(second, SklearnRuntime(pipeline, second), settings)
    loaded = {current.version: current, other.version: other}

    def versions(name: str, version: str) -> ModelService:
        if name == "iris" and version in loaded:
            return loaded[version]
        raise ModelNotFoundError(f"version {version!r} of {name} is not loaded here")

    async def main() -> None:
        handle = await start_grpc(lambda: {"iris": current}, settings, 0, versions=versions)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                stub = GRPCInferenceServiceStub(channel)
                answer = await stub.ModelInfer(_raw_request([FLOWER], model_version=other.version))
                assert answer.model_version == other.version
                answer = await stub.ModelInfer(_raw_request([FLOWER]))
                assert answer.model_version == current.version
                code, details = await _code(
                    stub.ModelInfer(_raw_request([FLOWER], model_version="9"))
                )
                assert code == Code.NOT_FOUND and "'9'" in details
        finally:
            await handle.stop(1)

    try:
        asyncio.run(main())
    finally:
        current.close()
        other.close()
