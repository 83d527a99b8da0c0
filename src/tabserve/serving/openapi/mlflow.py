"""MLflow scoring: `/invocations` for the default model, as JSON (four shapes) or CSV."""

from __future__ import annotations

from typing import Any

from tabserve.serving.openapi.operations import _PREDICT_ERRORS, _json, _ok, _responses
from tabserve.serving.openapi.schemas import (
    Schema,
    _batch,
    _csv_pattern,
    _label,
    _row_array,
    _row_object,
    _rows,
)
from tabserve.types import Manifest


def _mlflow_body(manifest: Manifest, max_rows: int) -> Schema:
    rows = _rows(manifest, max_rows)
    names = [f.name for f in manifest.features]
    shapes: dict[str, Schema] = {
        "dataframe_split": {
            "type": "object",
            "required": ["data"],  # columns default to the feature order
            "properties": {
                "columns": {
                    "type": "array",
                    "prefixItems": [{"const": n} for n in names],
                    "items": False,
                    "minItems": len(names),
                },
                "data": _batch(_row_array(manifest), max_rows),
                "index": {"type": "array"},
            },
            "additionalProperties": False,
        },
        "dataframe_records": _batch(_row_object(manifest), max_rows),
        "instances": rows,
        "inputs": rows,
    }
    return {
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: schema, "params": {"type": "object"}},
                "additionalProperties": False,
            }
            for key, schema in shapes.items()
        ]
    }


def _mlflow_paths(manifest: Manifest, max_rows: int, auth: bool) -> dict[str, Any]:
    predictions: Schema = {"type": "array", "items": _label(manifest)}
    csv = {
        "type": "string",
        "pattern": _csv_pattern(manifest),
        "description": "A header row naming the features, then one row per line.",
    }
    return {
        "/invocations": {
            "post": {
                "tags": ["mlflow"],
                "operationId": "mlflow_invocations",
                "summary": f"MLflow scoring for {manifest.name} (the default model)",
                "requestBody": {
                    "required": True,
                    "content": {
                        **_json(_mlflow_body(manifest, max_rows)),
                        "text/csv": {"schema": csv},
                    },
                },
                "responses": _responses(
                    _ok(
                        "One prediction per row.",
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
        }
    }
