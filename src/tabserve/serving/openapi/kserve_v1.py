"""KServe V1 / TF-Serving paths: ready state, `:predict` and `:predict_proba` per model."""

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
from tabserve.serving.openapi.schemas import Schema, _classifier, _label, _proba_row, _rows
from tabserve.types import Manifest


def _kserve_v1(manifest: Manifest, max_rows: int, auth: bool) -> dict[str, Any]:
    name = manifest.name
    rows = _rows(manifest, max_rows)
    parameters: Schema = {"type": "object"}
    if _classifier(manifest):
        parameters["properties"] = {
            "probabilities": {
                "type": "boolean",
                "description": "true: answer class probabilities, as :predict_proba.",
            }
        }
    body = {
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: rows, "parameters": parameters},
                "additionalProperties": False,
            }
            for key in ("instances", "inputs")
        ]
    }
    labels = {"type": "array", "items": _label(manifest)}
    predictions: Schema = labels
    if _classifier(manifest):
        predictions = {"anyOf": [labels, {"type": "array", "items": _proba_row(manifest)}]}
    paths: dict[str, Any] = {
        f"/v1/models/{name}": {
            "get": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_model", name),
                "summary": f"{name}: ready state",
                "responses": _responses(
                    _ok(
                        "Ready state.",
                        _json(
                            {
                                "type": "object",
                                "required": ["name", "ready"],
                                "properties": {
                                    "name": {"const": name},
                                    "ready": {"type": "boolean"},
                                },
                            }
                        ),
                    ),
                    _READ_ERRORS,
                    auth,
                ),
            }
        },
        f"/v1/models/{name}:predict": {
            "post": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_predict", name),
                "summary": f"{name}: predict rows (lists in feature order or objects by name)",
                "requestBody": {"required": True, "content": _json(body)},
                "responses": _responses(
                    _ok(
                        "One prediction per row (probabilities with parameters.probabilities).",
                        _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {"predictions": predictions},
                            }
                        ),
                        model_version=True,
                    ),
                    _PREDICT_ERRORS,
                    auth,
                ),
            }
        },
    }
    if _classifier(manifest):
        proba_body = {
            "oneOf": [
                {
                    "type": "object",
                    "required": [key],
                    "properties": {key: rows, "parameters": {"type": "object"}},
                    "additionalProperties": False,
                }
                for key in ("instances", "inputs")
            ]
        }
        paths[f"/v1/models/{name}:predict_proba"] = {
            "post": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_predict_proba", name),
                "summary": f"{name}: class probabilities per row",
                "requestBody": {"required": True, "content": _json(proba_body)},
                "responses": _responses(
                    _ok(
                        "One probability row per input row.",
                        _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {
                                    "predictions": {"type": "array", "items": _proba_row(manifest)}
                                },
                            }
                        ),
                        model_version=True,
                    ),
                    _PREDICT_ERRORS,
                    auth,
                ),
            }
        }
    return paths
