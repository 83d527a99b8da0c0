"""KServe V1 / TF-Serving: `{"instances": [...]}` or `{"inputs": ...}` -> `{"predictions": [...]}`.

Rows are lists in feature order or objects keyed by feature name; `inputs` may also be one
list per feature (TF-Serving's columnar form). Class probabilities come from
`:predict_proba` or `"parameters": {"probabilities": true}`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tabserve.errors import BadRequestError
from tabserve.serving.validation import Schema, invalid
from tabserve.types import Prediction

__all__ = ["decode", "encode", "rows_from", "wants_proba"]


def rows_from(schema: Schema, value: Any, key: str) -> np.ndarray:
    """Validated rows from an `instances`/`inputs` value: row lists, row objects or columns."""
    if isinstance(value, dict):
        return schema.from_columns(value, (key,))
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return schema.from_records(value, (key,))
    return schema.from_lists(value, (key,))


def decode(schema: Schema, body: Any) -> np.ndarray:
    """The rows of a V1 request body (already parsed JSON)."""
    if not isinstance(body, dict):
        raise BadRequestError(
            'the body must be a JSON object: {"instances": [[...], ...]}',
            [{"loc": ["body"], "msg": "not an object"}],
        )
    if "instances" in body and "inputs" in body:
        raise invalid(("body",), "send either instances or inputs, not both", "shape")
    unknown = [key for key in body if key not in ("instances", "inputs", "parameters")]
    if unknown:
        raise invalid(
            (unknown[0],),
            f"unknown field {unknown[0]!r}: send instances (or inputs) and optionally parameters",
            "extra_field",
        )
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid(("parameters",), "parameters must be an object", "type")
    if not isinstance(parameters.get("probabilities", False), bool):
        raise invalid(
            ("parameters", "probabilities"), "probabilities must be true or false", "type"
        )
    for key in ("instances", "inputs"):
        if key in body:
            return rows_from(schema, body[key], key)
    raise invalid(
        ("body", "instances"), 'instances is missing: {"instances": [[...], ...]}', "shape"
    )


def wants_proba(body: Any) -> bool:
    """True when the request asks for probabilities with `parameters.probabilities`."""
    parameters = body.get("parameters") if isinstance(body, dict) else None
    return isinstance(parameters, dict) and parameters.get("probabilities") is True


def encode(prediction: Prediction, proba: bool) -> dict[str, Any]:
    """`{"predictions": labels}` or `{"predictions": [[p, ...], ...]}` for probabilities."""
    if proba:
        if prediction.proba is None:
            raise invalid(
                ("parameters", "probabilities"),
                "this model is a regressor: it has no class probabilities",
                "no_proba",
            )
        return {"predictions": prediction.proba.tolist()}
    return {"predictions": prediction.labels.tolist()}
