"""Open Inference Protocol tensors over gRPC: ModelInferRequest -> rows, Prediction -> response.

Decoding goes through the REST V2 codec on purpose, so both transports accept and refuse
exactly the same tensors: a gRPC input's bytes (`raw_input_contents`, or its typed
`contents` packed the same way) are what Triton's binary tensor extension carries over
HTTP, so each input becomes a V2 header with `binary_data_size` plus one tail of bytes,
and `oip_v2.decode` checks shapes, datatypes and the model's schema as it does for
`tritonclient.http`. Outputs come back as `raw_output_contents` when the request used raw
inputs (what `tritonclient.grpc` reads), else in the typed `contents` fields.
"""

from __future__ import annotations

import struct
from math import prod
from typing import Any

import numpy as np

from tabserve.errors import BadRequestError
from tabserve.serving.grpc.protos import grpc_predict_v2_pb2 as pb
from tabserve.serving.protocols import oip_v2
from tabserve.serving.protocols.triton_binary import NUMPY_DTYPES
from tabserve.serving.validation import Schema, invalid
from tabserve.types import Manifest, Prediction

__all__ = ["decode", "encode", "metadata", "requested"]

_LENGTH = struct.Struct("<I")

# V2 datatype -> the InferTensorContents field that carries it (FP16 travels raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _bad(loc: tuple[str | int, ...], message: str) -> BadRequestError:
    return BadRequestError(message, [{"loc": list(loc), "msg": message}])


def _length_prefixed(items: Any) -> bytes:
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def _packed(index: int, tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    """The typed `contents` of one input as the raw little-endian bytes of its datatype."""
    name, datatype = tensor.name, tensor.datatype
    field = CONTENTS_FIELD.get(datatype)
    loc: tuple[str | int, ...] = ("inputs", index, "contents")
    if field is None:
        if datatype == "FP16":
            raise _bad(loc, f"input {name!r}: FP16 has no typed field; send raw_input_contents")
        raise _bad(
            ("inputs", index, "datatype"),
            f"input {name!r} has an unknown datatype {datatype!r}; use one of "
            f"{', '.join(CONTENTS_FIELD)}",
        )
    values = getattr(tensor.contents, field)
    count = prod(tensor.shape)
    if len(values) != count:
        raise _bad(
            loc,
            f"input {name!r} has {len(values)} values in contents.{field} but its shape "
            f"{list(tensor.shape)} needs {count}",
        )
    if datatype == "BYTES":
        return _length_prefixed(values)
    dtype = NUMPY_DTYPES[datatype]
    wide = np.asarray(values, dtype=np.float64 if dtype.kind == "f" else None)
    array = wide.astype(dtype)
    if dtype.kind in "iu" and not np.array_equal(array, wide):
        raise invalid(loc, f"input {name!r} holds values outside {datatype}'s range", "range")
    return array.tobytes()


def decode(schema: Schema, request: pb.ModelInferRequest) -> np.ndarray:
    """Validated rows from a ModelInferRequest (typed contents or raw_input_contents)."""
    inputs = request.inputs
    if not inputs:
        raise _bad(("inputs",), "inputs must hold at least one tensor")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise _bad(
            ("raw_input_contents",),
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs: "
            "send one per input, in input order",
        )
    header: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for i, tensor in enumerate(inputs):
        if raw:
            if tensor.HasField("contents"):
                raise _bad(
                    ("inputs", i, "contents"),
                    f"input {tensor.name!r} has contents while raw_input_contents is used: "
                    "send one or the other",
                )
            chunk = raw[i]
        else:
            chunk = _packed(i, tensor)
        header.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {"binary_data_size": len(chunk)},
            }
        )
        chunks.append(chunk)
    return oip_v2.decode(schema, {"inputs": header}, b"".join(chunks))


def requested(manifest: Manifest, request: pb.ModelInferRequest) -> list[str]:
    """The outputs the request names (every output when it names none); unknown ones refused."""
    for i, output in enumerate(request.outputs):
        if "classification" in output.parameters:
            raise invalid(
                ("outputs", i, "parameters", "classification"),
                "the classification extension is not supported: ask for predict_proba",
                "unknown_output",
            )
    names = {"outputs": [{"name": output.name} for output in request.outputs]}
    return oip_v2.requested(manifest, names if request.outputs else {})


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode("utf-8")


def _put(
    response: pb.ModelInferResponse,
    name: str,
    datatype: str,
    array: np.ndarray,
    raw: bool,
) -> None:
    tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
    if datatype == "BYTES":
        items = [_as_bytes(v) for v in array.ravel().tolist()]
        if raw:
            response.raw_output_contents.append(_length_prefixed(items))
        else:
            tensor.contents.bytes_contents.extend(items)
        return
    typed = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype])
    if raw:
        response.raw_output_contents.append(typed.tobytes())
    else:
        getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(typed.ravel().tolist())


def encode(
    manifest: Manifest,
    prediction: Prediction,
    names: list[str],
    *,
    request_id: str,
    raw: bool,
) -> pb.ModelInferResponse:
    """The ModelInferResponse for `names` (predict, predict_proba) of one prediction."""
    response = pb.ModelInferResponse(
        model_name=manifest.name, model_version=str(manifest.version), id=request_id
    )
    for name in names:
        if name == "predict":
            labels = prediction.labels
            datatype = oip_v2.label_datatype(labels)
            if datatype == "INT64" and labels.dtype == object:
                labels = labels.astype(np.int64)
            _put(response, name, datatype, labels, raw)
        elif prediction.proba is not None:
            _put(response, name, "FP64", prediction.proba, raw)
    return response


def metadata(manifest: Manifest) -> pb.ModelMetadataResponse:
    """ModelMetadata: the same inputs and outputs as `GET /v2/models/NAME`."""
    meta = oip_v2.metadata(manifest)
    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
        outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
    )
