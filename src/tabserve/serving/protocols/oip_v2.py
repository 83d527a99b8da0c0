"""Open Inference Protocol (V2) over REST, as KServe, MLServer and Triton define it.

Inputs: one numeric tensor `input` of shape [N, n_features] (all-numeric models), or one
tensor per feature named after it (BYTES for categories); `data` flat or nested, or binary
after the JSON (Triton's extension, decoded by `triton_binary`). Outputs: `predict` (INT64
for integer labels, BYTES for strings, FP64 for regression) and, for classifiers,
`predict_proba` (FP64 [N, n_classes], classes in the metadata's order); `outputs` selects.
"""

from __future__ import annotations

from math import prod
from typing import Any

import msgspec
import numpy as np

from tabserve.errors import BadRequestError
from tabserve.serving.protocols import triton_binary
from tabserve.serving.validation import Schema, invalid
from tabserve.types import Manifest, Prediction

__all__ = ["decode", "encode", "metadata", "output_names", "server_metadata"]

NUMERIC = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
_FLAT_NUMBERS = list[float | None]
_NESTED_NUMBERS = list[list[float | None]]
_FLAT_TEXT = list[str | None]
_NESTED_TEXT = list[list[str | None]]


_LIMITS: dict[str, tuple[float, float]] = {
    "FP16": (-float(np.finfo(np.float16).max), float(np.finfo(np.float16).max)),
    "FP32": (-float(np.finfo(np.float32).max), float(np.finfo(np.float32).max)),
    **{
        f"{kind}{bits}": (
            float(np.iinfo(f"{kind.lower()}{bits}").min),
            float(np.iinfo(f"{kind.lower()}{bits}").max),
        )
        for kind in ("INT", "UINT")
        for bits in (8, 16, 32, 64)
    },
}


_REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")


def _bad(loc: tuple[str | int, ...], message: str) -> BadRequestError:
    return BadRequestError(message, [{"loc": list(loc), "msg": message}])


def _tensor(index: int, tensor: Any, binary: np.ndarray | None) -> tuple[str, np.ndarray]:
    """The name and values of one input tensor, shaped as it declares."""
    loc: tuple[str | int, ...] = ("inputs", index)
    if not isinstance(tensor, dict):
        raise _bad(loc, f"inputs[{index}] must be an object")
    extra = [k for k in tensor if k not in ("name", "shape", "datatype", "data", "parameters")]
    if extra:
        raise invalid(
            (*loc, extra[0]), f"unknown field {extra[0]!r} in inputs[{index}]", "extra_field"
        )
    if not isinstance(tensor.get("parameters", {}), dict):
        raise invalid((*loc, "parameters"), "parameters must be an object", "type")
    name = tensor.get("name")
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    if not isinstance(name, str):
        raise _bad((*loc, "name"), f"inputs[{index}] needs a name")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _bad((*loc, "shape"), f"input {name!r} needs a shape: a list of sizes")
    # A non-string datatype (an object, a list) is unhashable: checking it against the set
    # would raise TypeError and answer 500.
    if not isinstance(datatype, str) or (
        datatype != "BYTES" and datatype not in NUMERIC and datatype != "BOOL"
    ):
        raise _bad((*loc, "datatype"), f"input {name!r} has an unknown datatype {datatype!r}")
    if binary is not None:
        return name, binary
    if "data" not in tensor:
        raise _bad((*loc, "data"), f"input {name!r} has no data")
    data = tensor["data"]
    if datatype == "BOOL":
        raise invalid((*loc, "data"), f"input {name!r} is BOOL where numbers are due", "type")
    flat_type, nested_type = (
        (_FLAT_TEXT, _NESTED_TEXT) if datatype == "BYTES" else (_FLAT_NUMBERS, _NESTED_NUMBERS)
    )
    values: list[Any]
    try:
        values = msgspec.convert(data, type=flat_type)
    except msgspec.ValidationError:
        try:
            nested: list[list[Any]] = msgspec.convert(data, type=nested_type)
            values = [v for row in nested for v in row]
        except msgspec.ValidationError as error:
            where = str(error).rsplit("`$", 1)[-1].rstrip("`")
            raise invalid(
                (*loc, "data"),
                f"input {name!r} ({datatype}) holds a value of the wrong type at {where or 'top'}: "
                + str(error).split(" - at ", 1)[0],
                "type",
            ) from None
    if len(values) != prod(shape):
        raise _bad(
            (*loc, "shape"),
            f"input {name!r} has {len(values)} values but its shape {shape} needs {prod(shape)}",
        )
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.array(values, dtype=np.float64)
        _check_range(array, datatype, (*loc, "data"), name)
    return name, array.reshape(shape)


def _check_range(array: np.ndarray, datatype: str, loc: tuple[str | int, ...], name: str) -> None:
    # JSON numbers arrive as float64: one the declared datatype cannot hold (1e39 as FP32, 300
    # as INT8) is refused rather than silently served as if the client had sent a float64.
    if datatype not in _LIMITS:
        return
    low, high = _LIMITS[datatype]
    finite = array[np.isfinite(array)]
    if finite.size and (finite.min() < low or finite.max() > high):
        raise invalid(loc, f"input {name!r} holds a value outside the range of {datatype}", "range")


def decode(schema: Schema, request: Any, tail: bytes = b"") -> np.ndarray:
    """Validated rows from a V2 inference request (parsed JSON header plus binary tail)."""
    if not isinstance(request, dict):
        raise _bad(("body",), "the body must be a JSON object with inputs")
    unknown = [key for key in request if key not in _REQUEST_KEYS]
    if unknown:
        raise invalid(
            (unknown[0],),
            f"unknown field {unknown[0]!r}: a V2 request has only {', '.join(_REQUEST_KEYS)}",
            "extra_field",
        )
    parameters = request.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid(("parameters",), "parameters must be an object", "type")
    if not isinstance(parameters.get("binary_data_output", False), bool):
        raise invalid(
            ("parameters", "binary_data_output"), "binary_data_output must be true or false", "type"
        )
    if not isinstance(request.get("id", ""), str):
        raise invalid(("id",), "id must be a string", "type")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad(("inputs",), "inputs must be a non-empty list of tensors")
    binaries = triton_binary.read_inputs(inputs, tail)
    tensors = [_tensor(i, t, b) for i, (t, b) in enumerate(zip(inputs, binaries, strict=True))]
    if len(tensors) == 1 and (tensors[0][0] not in schema.index or schema.width == 1):
        name, array = tensors[0]
        if name != "input" and name not in schema.index:
            raise invalid(
                ("inputs", 0, "name"),
                f"input {name!r} is not known: send one tensor named 'input' [N, {schema.width}] "
                f"or one tensor per feature: {', '.join(schema.names)}",
                "extra_feature",
            )
        if array.dtype == object:
            raise invalid(("inputs", 0), "a BYTES tensor where numbers are due", "type")
        return schema.from_matrix(array, ("inputs", 0, "data"))
    columns: dict[str, Any] = {}
    for i, (name, array) in enumerate(tensors):
        if name in columns:
            raise invalid(("inputs", i, "name"), f"input {name!r} is given twice", "shape")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise invalid(
                ("inputs", i, "shape"),
                f"input {name!r} must have shape [N] or [N, 1] (one feature)",
                "shape",
            )
        if array.dtype.kind == "b":
            raise invalid(("inputs", i), f"input {name!r} is BOOL where a feature is due", "type")
        columns[name] = array
    return schema.from_columns(columns, ("inputs",))


def output_names(manifest: Manifest) -> list[str]:
    """The outputs a model has: predict, and predict_proba for classifiers."""
    if manifest.task == "classification":
        return ["predict", "predict_proba"]
    return ["predict"]


def label_datatype(labels: np.ndarray) -> str:
    """The V2 datatype of predicted labels: INT64, FP64, BOOL or BYTES."""
    kind = labels.dtype.kind
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    if kind == "b":
        return "BOOL"
    if kind == "O" and len(labels) and all(type(v) is int for v in labels.tolist()):
        return "INT64"
    return "BYTES"


def requested(manifest: Manifest, request: dict[str, Any]) -> list[str]:
    """The output names a request asks for (all when it names none)."""
    known = output_names(manifest)
    if "outputs" not in request:
        return known
    outputs = request["outputs"]
    if not isinstance(outputs, list):
        raise _bad(("outputs",), "outputs must be a list of {name} objects")
    names = []
    for i, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        extra = [k for k in output if k not in ("name", "parameters")] if name else []
        if name and not isinstance(output.get("parameters", {}), dict):
            raise invalid(("outputs", i, "parameters"), "parameters must be an object", "type")
        if extra:
            raise invalid(
                ("outputs", i, extra[0]),
                f"unknown field {extra[0]!r} in outputs[{i}]: give name and optionally parameters",
                "extra_field",
            )
        if name not in known:
            raise invalid(
                ("outputs", i, "name"),
                f"output {name!r} is not produced by this model; outputs: {', '.join(known)}",
                "unknown_output",
            )
        names.append(name)
    return names


def encode(
    manifest: Manifest, prediction: Prediction, request: dict[str, Any]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON length when binary outputs follow it."""
    outputs: list[triton_binary.OutputTensor] = []
    n = len(prediction.labels)
    for name in requested(manifest, request):
        binary = triton_binary.wants_binary(request, name)
        if name == "predict":
            labels = prediction.labels
            datatype = label_datatype(labels)
            if datatype == "INT64" and labels.dtype == object:
                labels = labels.astype(np.int64)
            elif datatype == "BYTES":
                # Plain Python strings: numpy's str_ does not encode as JSON.
                plain = np.empty(n, dtype=object)
                plain[:] = [str(v) for v in labels.tolist()]
                labels = plain
            outputs.append((name, datatype, [n], labels, binary))
        elif prediction.proba is not None:
            outputs.append((name, "FP64", list(prediction.proba.shape), prediction.proba, binary))
    header: dict[str, Any] = {"model_name": manifest.name, "model_version": str(manifest.version)}
    if "id" in request:
        header["id"] = request["id"]
    return triton_binary.encode_outputs(outputs, header)


def metadata(manifest: Manifest) -> dict[str, Any]:
    """`GET /v2/models/NAME`: inputs, outputs and the class order of predict_proba."""
    if manifest.all_numeric:
        inputs = [{"name": "input", "datatype": "FP64", "shape": [-1, len(manifest.features)]}]
    else:
        inputs = [
            {
                "name": f.name,
                "datatype": "FP64" if f.kind == "number" else "BYTES",
                "shape": [-1, 1],
            }
            for f in manifest.features
        ]
    classes = manifest.classes
    label_type = "FP64"
    if classes is not None:
        label_type = "INT64" if all(type(c) is int for c in classes) else "BYTES"
    outputs = [{"name": "predict", "datatype": label_type, "shape": [-1]}]
    if manifest.task == "classification":
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes or [])]}
        )
    meta: dict[str, Any] = {
        "name": manifest.name,
        "versions": [str(manifest.version)],
        "platform": f"tabserve-{manifest.runtime.kind}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"features": [f.name for f in manifest.features], "task": manifest.task},
    }
    if classes is not None:
        meta["parameters"]["classes"] = classes
    return meta


def server_metadata() -> dict[str, Any]:
    """`GET /v2`: the server's name, protocol version and extensions."""
    return {"name": "tabserve", "version": "2", "extensions": ["binary_tensor_data"]}
