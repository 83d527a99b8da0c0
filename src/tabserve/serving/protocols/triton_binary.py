"""Triton's binary tensor data extension for the Open Inference Protocol (V2) over HTTP.

`tritonclient.http` sends and asks for tensors this way by default: the body is the JSON
header followed by raw little-endian row-major tensor bytes, and the HTTP header
`Inference-Header-Content-Length` gives the JSON part's length. Pure functions, no web
framework: the V2 route calls `split_body` -> `read_inputs` on the way in and
`encode_outputs` on the way out.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

import msgspec
import numpy as np

from tabserve.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError

__all__ = [
    "HEADER_LENGTH",
    "NUMPY_DTYPES",
    "OutputTensor",
    "decompress",
    "encode_outputs",
    "parse_header_length",
    "read_inputs",
    "split_body",
    "wants_binary",
]

HEADER_LENGTH = "Inference-Header-Content-Length"

# V2 datatype -> the little-endian numpy dtype of its wire bytes (BYTES is length-prefixed).
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

# (name, datatype, shape, array, binary): one response tensor, as the V2 codec produces it.
OutputTensor = tuple[str, str, Sequence[int], np.ndarray, bool]

_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    """Split a request body into its JSON header and binary tail (`Inference-Header-Content-Length`)."""
    if header_length is None:
        return body, b""
    if header_length < 0 or header_length > len(body):
        raise BadRequestError(
            f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes: "
            "send the length in bytes of the JSON part that starts the body",
            [{"loc": ["header", HEADER_LENGTH], "msg": "outside the body"}],
        )
    return body[:header_length], body[header_length:]


def parse_header_length(value: str | None) -> int | None:
    """The `Inference-Header-Content-Length` header as an int (None when absent)."""
    if value is None:
        return None
    text = value.strip()
    # int() would also take "+5", " 5_0" or non-ASCII digits; the header is plain decimal.
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadRequestError(
            f"{HEADER_LENGTH} must be a non-negative decimal integer, got {value!r}",
            [{"loc": ["header", HEADER_LENGTH], "msg": "not a non-negative integer"}],
        )
    return int(text)


def _bad(index: int, name: object, message: str, *loc: str) -> BadRequestError:
    return BadRequestError(
        f"input {name!r}: {message}",
        [{"loc": ["inputs", index, *loc], "msg": message}],
    )


def _shape_of(index: int, name: object, tensor: Mapping[str, Any]) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _bad(index, name, "shape must be a list of non-negative integers", "shape")
    return shape


def _binary_size(index: int, name: object, tensor: Mapping[str, Any]) -> int | None:
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise _bad(index, name, "parameters must be an object", "parameters")
    if "shared_memory_region" in parameters:
        raise _bad(
            index,
            name,
            "shared memory is not supported: send the data in the body",
            "parameters",
            "shared_memory_region",
        )
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(
            index,
            name,
            "binary_data_size must be a non-negative integer",
            "parameters",
            "binary_data_size",
        )
    if "data" in tensor:
        raise _bad(index, name, "has both data and binary_data_size: send one", "data")
    return size


def _read_bytes_tensor(index: int, name: object, raw: bytes, count: int) -> np.ndarray:
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise _bad(index, name, "BYTES element length cut short", "parameters")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise _bad(
                index,
                name,
                f"BYTES element {len(items)} announces {length} bytes past binary_data_size",
                "parameters",
                "binary_data_size",
            )
        items.append(raw[offset : offset + length])
        offset += length
        if len(items) > count:
            break
    if len(items) != count:
        raise _bad(
            index,
            name,
            f"shape holds {count} elements but the BYTES data holds "
            f"{'more' if len(items) > count else len(items)}",
            "shape",
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def read_inputs(inputs: list[dict[str, Any]], tail: bytes) -> list[np.ndarray | None]:
    """Decode the binary inputs from the tail: one array per input, None for JSON `data` inputs.

    Inputs carrying `parameters.binary_data_size` take their bytes from `tail` in input order
    and come back as arrays of their `shape` (native byte order; BYTES as an object array of
    `bytes`). Inputs without it are left to the JSON codec: their entry is None.
    """
    if not isinstance(inputs, list):
        raise BadRequestError(
            "inputs must be a list of tensors", [{"loc": ["inputs"], "msg": "not a list"}]
        )
    arrays: list[np.ndarray | None] = []
    offset = 0
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequestError(
                f"inputs[{index}] must be an object",
                [{"loc": ["inputs", index], "msg": "not an object"}],
            )
        name = tensor.get("name", f"#{index}")
        size = _binary_size(index, name, tensor)
        if size is None:
            arrays.append(None)
            continue
        shape = _shape_of(index, name, tensor)
        datatype = tensor.get("datatype")
        if offset + size > len(tail):
            raise _bad(
                index,
                name,
                f"binary_data_size is {size} but only {len(tail) - offset} bytes follow the JSON",
                "parameters",
                "binary_data_size",
            )
        raw = tail[offset : offset + size]
        offset += size
        count = prod(shape)
        if datatype == "BYTES":
            array = _read_bytes_tensor(index, name, raw, count)
        elif isinstance(datatype, str) and datatype in NUMPY_DTYPES:
            dtype = NUMPY_DTYPES[datatype]
            if size != count * dtype.itemsize:
                raise _bad(
                    index,
                    name,
                    f"binary_data_size is {size} but shape {shape} of {datatype} "
                    f"needs {count * dtype.itemsize} bytes",
                    "parameters",
                    "binary_data_size",
                )
            if datatype == "BOOL":
                # Any non-zero byte is true; numpy would keep other byte values as-is.
                array = np.frombuffer(raw, dtype=np.uint8) != 0
            else:
                array = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        else:
            raise _bad(
                index,
                name,
                f"datatype {datatype!r} is not supported; use one of "
                f"{', '.join([*NUMPY_DTYPES, 'BYTES'])}",
                "datatype",
            )
        arrays.append(array.reshape(shape))
    if offset != len(tail):
        raise BadRequestError(
            f"{len(tail) - offset} bytes follow the JSON that no input's binary_data_size "
            "accounts for: check Inference-Header-Content-Length and each binary_data_size",
            [{"loc": ["body"], "msg": "unclaimed binary data"}],
        )
    return arrays


def wants_binary(request: Mapping[str, Any], name: str) -> bool:
    """Whether the request asks for output `name` as binary data (as tritonclient does by default)."""
    default = False
    parameters = request.get("parameters")
    if isinstance(parameters, dict):
        default = parameters.get("binary_data_output") is True
    outputs = request.get("outputs")
    if isinstance(outputs, list):
        for output in outputs:
            if isinstance(output, dict) and output.get("name") == name:
                params = output.get("parameters")
                if isinstance(params, dict) and "binary_data" in params:
                    return params["binary_data"] is True
    return default


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _tensor_bytes(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return b"".join(
            _LENGTH.pack(len(b)) + b for b in (_as_bytes(v) for v in array.ravel(order="C"))
        )
    dtype = NUMPY_DTYPES[datatype]
    return np.ascontiguousarray(array, dtype=dtype).tobytes(order="C")


def _tensor_data(datatype: str, array: np.ndarray) -> list[Any]:
    flat = array.ravel(order="C")
    if datatype == "BYTES":
        return [_as_text(v) for v in flat]
    return list(flat.astype(NUMPY_DTYPES[datatype].newbyteorder("=")).tolist())


def encode_outputs(
    outputs: Sequence[OutputTensor], header: Mapping[str, Any]
) -> tuple[bytes, int | None]:
    """The V2 response body and its JSON length for `Inference-Header-Content-Length` (None: all JSON).

    `header` holds the response's other fields (model_name, model_version, id, parameters);
    its `outputs` are built here, binary ones as `parameters.binary_data_size` with their
    bytes appended after the JSON in output order.
    """
    described: list[dict[str, Any]] = []
    tails: list[bytes] = []
    for name, datatype, shape, array, binary in outputs:
        if datatype != "BYTES" and datatype not in NUMPY_DTYPES:
            raise ValueError(f"output {name!r}: unknown datatype {datatype!r}")
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(shape)}
        values = np.asarray(array).reshape(tuple(shape))
        if binary:
            raw = _tensor_bytes(datatype, values)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tails.append(raw)
        else:
            tensor["data"] = _tensor_data(datatype, values)
        described.append(tensor)
    body = msgspec.json.encode({**header, "outputs": described})
    if not tails:
        return body, None
    return b"".join([body, *tails]), len(body)


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo `Content-Encoding: gzip|deflate` (tritonclient's compression), refusing more than max_bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        # "deflate" means a zlib stream (RFC 9110), but some clients send raw deflate.
        inflater = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        raise UnsupportedMediaError(
            f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none",
            [{"loc": ["header", "Content-Encoding"], "msg": "unsupported encoding"}],
        )
    try:
        # max_length bounds memory: a small bomb never inflates past the limit.
        data = inflater.decompress(body, max_bytes + 1)
        if len(data) > max_bytes or inflater.unconsumed_tail:
            raise PayloadTooLargeError(
                f"the {coding} body inflates past {max_bytes} bytes: send a smaller request",
                [{"loc": ["body"], "msg": "too large once decompressed"}],
            )
        if not inflater.eof:
            raise BadRequestError(
                f"the {coding} body is truncated: send the whole compressed stream",
                [{"loc": ["body"], "msg": "truncated compressed data"}],
            )
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise BadRequestError(
            f"the body is not valid {coding} data: compress it with {coding} or drop Content-Encoding",
            [{"loc": ["body"], "msg": f"invalid {coding} data"}],
        ) from exc
    return data
