"""Triton's binary tensor extension, checked against what the real tritonclient sends and reads."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from tabserve.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError
from tabserve.serving.protocols.triton_binary import (
    decompress,
    encode_outputs,
    parse_header_length,
    read_inputs,
    split_body,
    wants_binary,
)

FLOWER = [[7.7, 3.0, 6.1, 2.3]]

NUMERIC = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([0, 255], dtype=np.uint8),
    "UINT16": np.array([1, 65535], dtype=np.uint16),
    "UINT32": np.array([1, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([1, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 127], dtype=np.int8),
    "INT16": np.array([-32768, 32767], dtype=np.int16),
    "INT32": np.array([[-(2**31)], [2**31 - 1]], dtype=np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
    "FP16": np.array([0.5, -2.0, np.inf], dtype=np.float16),
    "FP32": np.array(FLOWER, dtype=np.float32),
    "FP64": np.array([[1e308, -0.0, np.nan]], dtype=np.float64),
}


def client_body(*tensors: tuple[str, str, np.ndarray, bool]) -> tuple[dict[str, Any], bytes]:
    """The request tritonclient sends for these (name, datatype, array, binary) inputs, decoded."""
    inputs = []
    for name, datatype, array, binary in tensors:
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(inputs)
    head, tail = split_body(body, length)
    return json.loads(head), tail


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_every_numeric_datatype_round_trips_from_the_client(datatype: str) -> None:
    sent = NUMERIC[datatype]
    request, tail = client_body(("x", datatype, sent, True))
    (got,) = read_inputs(request["inputs"], tail)
    assert got is not None
    assert got.shape == sent.shape
    assert got.dtype == sent.dtype
    np.testing.assert_array_equal(got, sent)


def test_bytes_tensor_decodes_to_object_array_of_bytes() -> None:
    sent = np.array([[b"setosa", b""], [b"virginica", "é".encode()]], dtype=object)
    request, tail = client_body(("species", "BYTES", sent, True))
    (got,) = read_inputs(request["inputs"], tail)
    assert got is not None
    assert got.dtype == object
    assert got.shape == (2, 2)
    assert got.tolist() == [[b"setosa", b""], [b"virginica", "é".encode()]]


def test_inputs_are_read_in_order_and_json_inputs_are_left_as_none() -> None:
    request, tail = client_body(
        ("input", "FP32", np.array(FLOWER, dtype=np.float32), True),
        ("colour", "BYTES", np.array([b"red"], dtype=object), False),
        ("count", "INT64", np.array([3], dtype=np.int64), True),
    )
    first, second, third = read_inputs(request["inputs"], tail)
    assert first is not None and third is not None
    np.testing.assert_allclose(first, np.array(FLOWER, dtype=np.float32))
    assert second is None
    assert request["inputs"][1]["data"] == ["red"]
    assert third.tolist() == [3]


def test_a_plain_json_request_has_no_tail() -> None:
    body = b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}'
    head, tail = split_body(body, None)
    assert (head, tail) == (body, b"")
    assert read_inputs(json.loads(head)["inputs"], tail) == [None]


def test_decoded_arrays_are_writable() -> None:
    request, tail = client_body(("x", "FP64", np.zeros((2, 2)), True))
    (got,) = read_inputs(request["inputs"], tail)
    assert got is not None
    got[0, 0] = 1.0  # validation may fill values in place
    assert got[0, 0] == 1.0


@pytest.mark.parametrize("length", [-1, 1000])
def test_header_length_outside_the_body_is_a_bad_request(length: int) -> None:
    with pytest.raises(BadRequestError, match="Inference-Header-Content-Length"):
        split_body(b"{}", length)


@pytest.mark.parametrize("value", ["12x", "-3", "+4", "", "1e3", "٣"])
def test_header_length_must_be_plain_decimal(value: str) -> None:
    with pytest.raises(BadRequestError, match="Inference-Header-Content-Length"):
        parse_header_length(value)


def test_header_length_parses() -> None:
    assert parse_header_length(None) is None
    assert parse_header_length(" 163 ") == 163


def test_size_that_does_not_match_the_shape_names_the_input() -> None:
    request, tail = client_body(("petals", "FP32", np.array(FLOWER, dtype=np.float32), True))
    request["inputs"][0]["shape"] = [1, 3]
    with pytest.raises(BadRequestError, match=r"'petals'.*needs 12 bytes") as caught:
        read_inputs(request["inputs"], tail)
    assert caught.value.details[0]["loc"] == ["inputs", 0, "parameters", "binary_data_size"]


def test_missing_bytes_name_the_input() -> None:
    request, tail = client_body(("petals", "FP32", np.array(FLOWER, dtype=np.float32), True))
    with pytest.raises(BadRequestError, match=r"'petals'.*only 15 bytes"):
        read_inputs(request["inputs"], tail[:-1])


def test_leftover_bytes_are_refused() -> None:
    request, tail = client_body(("petals", "FP32", np.array(FLOWER, dtype=np.float32), True))
    with pytest.raises(BadRequestError, match="1 bytes follow the JSON"):
        read_inputs(request["inputs"], tail + b"\x00")


def test_tail_without_binary_inputs_is_refused() -> None:
    with pytest.raises(BadRequestError, match="follow the JSON"):
        read_inputs([{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}], b"abcd")


@pytest.mark.parametrize(
    ("count", "raw", "message"),
    [
        (2, b"\x02\x00\x00\x00ab", "holds 2 elements but the BYTES data holds 1"),
        (1, b"\x02\x00\x00\x00ab\x01\x00\x00\x00c", "BYTES data holds more"),
        (1, b"\x09\x00\x00\x00ab", "announces 9 bytes"),
        (1, b"\x02\x00", "cut short"),
    ],
)
def test_malformed_bytes_tensors_name_the_input(count: int, raw: bytes, message: str) -> None:
    inputs = [
        {
            "name": "species",
            "shape": [count],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(raw)},
        }
    ]
    with pytest.raises(BadRequestError, match=f"'species'.*{message}"):
        read_inputs(inputs, raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"datatype": "BF16"}, "datatype 'BF16' is not supported"),
        ({"datatype": None}, "datatype None is not supported"),
        ({"shape": [-1, 4]}, "shape must be a list of non-negative integers"),
        ({"shape": "1,4"}, "shape must be a list"),
        ({"shape": [True, 4]}, "shape must be a list"),
        ({"parameters": {"binary_data_size": -16}}, "binary_data_size must be a non-negative"),
        ({"parameters": {"binary_data_size": "16"}}, "binary_data_size must be a non-negative"),
        ({"parameters": {"binary_data_size": True}}, "binary_data_size must be a non-negative"),
        ({"parameters": [16]}, "parameters must be an object"),
        ({"data": [1, 2, 3, 4]}, "both data and binary_data_size"),
        ({"parameters": {"shared_memory_region": "r"}}, "shared memory is not supported"),
    ],
)
def test_malformed_tensor_descriptions_are_bad_requests(
    change: dict[str, Any], message: str
) -> None:
    request, tail = client_body(("petals", "FP32", np.array(FLOWER, dtype=np.float32), True))
    request["inputs"][0].update(change)
    with pytest.raises(BadRequestError, match=message):
        read_inputs(request["inputs"], tail if "shared" not in message else b"")


@pytest.mark.parametrize("inputs", [{"name": "x"}, ["x"], None])
def test_inputs_that_are_not_a_list_of_objects_are_bad_requests(inputs: Any) -> None:
    with pytest.raises(BadRequestError):
        read_inputs(inputs, b"")


def test_wants_binary_follows_the_client_defaults() -> None:
    # No outputs listed: the client sets binary_data_output for all of them.
    request, _ = client_body(("x", "FP32", np.array(FLOWER, dtype=np.float32), True))
    assert wants_binary(request, "predict") and wants_binary(request, "predict_proba")
    outputs = [
        triton.InferRequestedOutput("predict"),
        triton.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    x = triton.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.array(FLOWER, dtype=np.float32))
    body, length = triton.InferenceServerClient.generate_request_body([x], outputs=outputs)
    request = json.loads(split_body(body, length)[0])
    assert wants_binary(request, "predict") is True
    assert wants_binary(request, "predict_proba") is False
    assert wants_binary({"inputs": []}, "predict") is False


def parse(body: bytes, length: int | None) -> Any:
    return triton.InferenceServerClient.parse_response_body(body, header_length=length)


def test_client_reads_binary_outputs() -> None:
    proba = np.array([[0.0, 0.1, 0.9], [0.8, 0.2, 0.0]])
    header = {"model_name": "iris", "model_version": "3", "id": "req-1"}
    body, length = encode_outputs(
        [
            ("predict", "INT64", [2], np.array([2, 0]), True),
            ("predict_proba", "FP64", [2, 3], proba, True),
        ],
        header,
    )
    assert length is not None
    result = parse(body, length)
    assert result.as_numpy("predict").tolist() == [2, 0]
    assert result.as_numpy("predict").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), proba)
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_version"] == "3"
    assert response["outputs"][1]["parameters"] == {"binary_data_size": 48}
    assert "data" not in response["outputs"][1]


def test_client_reads_mixed_binary_and_json_outputs() -> None:
    labels = np.array(["virginica", "setosa"], dtype=object)
    body, length = encode_outputs(
        [
            ("predict", "BYTES", [2], labels, False),
            ("predict_proba", "FP64", [2, 2], np.eye(2), True),
            ("tag", "BYTES", [2], np.array([b"a", "b"], dtype=object), True),
        ],
        {"model_name": "iris", "model_version": "1"},
    )
    result = parse(body, length)
    assert result.as_numpy("predict").tolist() == ["virginica", "setosa"]
    assert result.get_output("predict")["data"] == ["virginica", "setosa"]
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), np.eye(2))
    assert result.as_numpy("tag").tolist() == [b"a", b"b"]


def test_all_json_outputs_have_no_header_length() -> None:
    body, length = encode_outputs(
        [("predict", "FP64", [2], np.array([1.5, -2.0]), False)],
        {"model_name": "houses", "model_version": "1"},
    )
    assert length is None
    assert json.loads(body) == {
        "model_name": "houses",
        "model_version": "1",
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [2], "data": [1.5, -2.0]}],
    }
    assert parse(body, None).as_numpy("predict").tolist() == [1.5, -2.0]


def test_empty_binary_output_round_trips() -> None:
    body, length = encode_outputs(
        [("predict", "INT64", [0], np.array([], dtype=np.int64), True)], {}
    )
    assert parse(body, length).as_numpy("predict").tolist() == []


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZip", gzip.compress)],
)
def test_compressed_bodies_as_the_client_sends_them(encoding: str, compress: Any) -> None:
    body = b'{"inputs": []}' * 10
    assert decompress(compress(body), encoding, 1000) == body


def test_raw_deflate_is_accepted_too() -> None:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = packer.compress(b"hello") + packer.flush()
    assert decompress(raw, "deflate", 100) == b"hello"


def test_identity_and_no_encoding_pass_through() -> None:
    assert decompress(b"abc", None, 1) == b"abc"
    assert decompress(b"abc", "identity", 1) == b"abc"


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\x00" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLargeError, match="inflates past 1048576 bytes"):
        decompress(bomb, "gzip", 1024 * 1024)


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"x" * 100)[:-30], b""])
def test_corrupt_or_truncated_compressed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequestError, match="gzip"):
        decompress(body, "gzip", 1000)


def test_unknown_content_encoding_is_unsupported_media() -> None:
    with pytest.raises(UnsupportedMediaError, match="br"):
        decompress(b"abc", "br", 1000)
