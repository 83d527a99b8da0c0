"""Open Inference Protocol V2 paths: metadata, ready and infer, per model and per version."""

from __future__ import annotations

from typing import Any

from tabserve.serving.openapi.operations import (
    _PREDICT_ERRORS,
    _READ_ERRORS,
    _json,
    _ok,
    _op_id,
    _responses,
)
from tabserve.serving.openapi.schemas import (
    _TENSOR_META,
    _TENSOR_OUT,
    Schema,
    _classifier,
    _row_array,
    _v2_tensor,
    feature_schema,
)
from tabserve.types import Manifest

_V2_BINARY_NOTE = (
    " Triton's binary tensor extension is accepted too (tritonclient's default): the JSON "
    "header, then raw tensor bytes, with `Inference-Header-Content-Length` giving the JSON "
    "length; inputs carry `parameters.binary_data_size` instead of `data`. Bodies may be "
    "sent with `Content-Encoding: gzip` or `deflate`, and with no Content-Type."
)


def _v2_request(manifest: Manifest) -> Schema:
    features = manifest.features
    per_feature = [
        _v2_tensor(
            {"const": f.name},
            ["BYTES"] if f.kind == "category" else ["FP64", "FP32"],
            [1],
            {
                "type": "array",
                "prefixItems": [feature_schema(f)],
                "items": False,
                "minItems": 1,
            },
        )
        for f in features
    ]
    forms: list[Schema] = [
        {
            "type": "array",
            "prefixItems": per_feature,
            "items": False,
            "minItems": len(features),
            "description": "One tensor per feature, named after it (BYTES for categories).",
        }
    ]
    if manifest.all_numeric:
        single = _v2_tensor(
            {"const": "input"},
            ["FP64", "FP32"],
            [1, len(features)],
            {**_row_array(manifest), "description": "Row-major values, feature order."},
        )
        forms.insert(
            0,
            {
                "type": "array",
                "prefixItems": [single],
                "items": False,
                "minItems": 1,
                "description": "One tensor `input` of shape [N, n_features].",
            },
        )
    output_names = ["predict", "predict_proba"] if _classifier(manifest) else ["predict"]
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "Echoed in the response."},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_output": {
                        "const": False,
                        "description": "true asks for binary outputs (see the description).",
                    }
                },
            },
            "inputs": {"anyOf": forms} if len(forms) > 1 else forms[0],
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": output_names},
                        "parameters": {
                            "type": "object",
                            "description": "Triton's binary_data flag (see the description).",
                        },
                    },
                    "additionalProperties": False,
                },
                "description": "Which outputs to answer (default: all).",
            },
        },
        "additionalProperties": False,
    }


def _v2_paths(manifest: Manifest, auth: bool) -> dict[str, Any]:
    name, version = manifest.name, str(manifest.version)
    classes = _classifier(manifest)
    outputs = "`predict`" + (" and `predict_proba` (FP64 [N, n_classes])" if classes else "")
    metadata = {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"const": name},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META},
            "outputs": {"type": "array", "items": _TENSOR_META},
        },
    }
    response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"const": name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
        },
    }
    infer_ok = _ok(
        f"Outputs {outputs}. With binary outputs the body is the JSON header plus raw bytes "
        "and `Inference-Header-Content-Length` gives the JSON length.",
        {**_json(response), "application/octet-stream": {"schema": {}}},
        model_version=True,
    )
    paths: dict[str, Any] = {}
    for prefix, suffix in (
        (f"/v2/models/{name}", ""),
        (f"/v2/models/{name}/versions/{version}", "_v"),
    ):
        paths[prefix] = {
            "get": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_metadata", name + suffix),
                "summary": f"{name}: metadata (inputs, outputs, versions)",
                "responses": _responses(
                    _ok("Model metadata.", _json(metadata)), _READ_ERRORS, auth
                ),
            }
        }
        paths[f"{prefix}/ready"] = {
            "get": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_ready", name + suffix),
                "summary": f"{name}: ready (200) or still loading (503)",
                "responses": _responses(_ok("Ready.", None), _READ_ERRORS, auth),
            }
        }
        paths[f"{prefix}/infer"] = {
            "post": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_infer", name + suffix),
                "summary": f"{name}: infer",
                "description": "Any number of rows N is accepted; the schema shows one row so "
                "that every body it allows is consistent (shape and data agree)." + _V2_BINARY_NOTE,
                "requestBody": {"required": True, "content": _json(_v2_request(manifest))},
                "responses": _responses(infer_ok, _PREDICT_ERRORS, auth),
            }
        }
    return paths
