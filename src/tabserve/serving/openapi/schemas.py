"""JSON Schemas shared by the protocols: features, rows, labels, probabilities, tensors, CSV."""

from __future__ import annotations

import re
from typing import Any

from tabserve.types import Feature, Manifest

Schema = dict[str, Any]

_TENSOR_META: Schema = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
_TENSOR_OUT: Schema = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": ["INT64", "FP64", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}


def feature_schema(feature: Feature) -> Schema:
    """The JSON Schema of one feature's value: number or category, with null when nullable."""
    if feature.kind == "category":
        categories: list[Any] = list(feature.categories or [])
        schema: Schema = {"type": "string", "enum": categories}
        if feature.nullable:
            schema = {"type": ["string", "null"], "enum": [*categories, None]}
        schema["description"] = f"Category seen in training ({len(categories)} values)."
        return schema
    schema = {"type": ["number", "null"] if feature.nullable else "number"}
    if feature.min is not None and feature.max is not None:
        # Described, not enforced: values outside the training range are served and counted.
        schema["description"] = (
            f"Training range [{feature.min:g}, {feature.max:g}]; values outside it are served."
        )
        schema["x-training-range"] = [feature.min, feature.max]
    if feature.nullable:
        schema["description"] = schema.get("description", "") + " null means missing."
    return schema


def _row_object(manifest: Manifest) -> Schema:
    return {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in manifest.features},
        "required": [f.name for f in manifest.features],
        "additionalProperties": False,
    }


def _row_array(manifest: Manifest) -> Schema:
    n = len(manifest.features)
    return {
        "type": "array",
        "prefixItems": [feature_schema(f) for f in manifest.features],
        "items": False,
        "minItems": n,
        "maxItems": n,
        "description": "Values in feature order: " + ", ".join(f.name for f in manifest.features),
    }


def _batch(row: Schema, max_rows: int) -> Schema:
    return {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}


def _rows(manifest: Manifest, max_rows: int) -> Schema:
    # Every row of one batch in the same form: the server refuses a batch that mixes them.
    return {
        "anyOf": [
            _batch(_row_array(manifest), max_rows),
            _batch(_row_object(manifest), max_rows),
        ]
    }


def _label(manifest: Manifest) -> Schema:
    if manifest.task == "classification" and manifest.classes:
        return {"enum": list(manifest.classes)}
    return {"type": "number"}


def _proba_row(manifest: Manifest) -> Schema:
    n = len(manifest.classes or [])
    return {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "minItems": n,
        "maxItems": n,
        "description": f"Class probabilities in the order {list(manifest.classes or [])}.",
    }


def _classifier(manifest: Manifest) -> bool:
    return manifest.task == "classification" and bool(manifest.classes)


_FLOAT32_MAX = 3.4028234663852886e38


def _float32(schema: Any) -> Any:
    """schema with every number bounded to float32's range (FP32 tensors refuse the rest)."""
    if isinstance(schema, list):
        return [_float32(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _float32(value) for key, value in schema.items()}
    kinds = schema.get("type")
    if kinds == "number" or (isinstance(kinds, list) and "number" in kinds):
        bounded["minimum"] = -_FLOAT32_MAX
        bounded["maximum"] = _FLOAT32_MAX
    return bounded


def _v2_tensor(name: Schema, datatypes: list[str], shape: list[int], data: Schema) -> Schema:
    wide = [d for d in datatypes if d != "FP32"]
    if "FP32" in datatypes and wide:
        return {
            "anyOf": [
                _v2_tensor(name, wide, shape, data),
                _v2_tensor(name, ["FP32"], shape, _float32(data)),
            ]
        }
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": name,
            "shape": {
                "type": "array",
                "prefixItems": [{"const": d} for d in shape],
                "items": False,
                "minItems": len(shape),
            },
            "datatype": {"enum": datatypes},
            "data": data,
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": False},
            },
        },
        "additionalProperties": False,
    }


def _regex_escape(text: str) -> str:
    # re.escape also escapes spaces and dashes, which ECMA-262 regexes (JSON Schema) refuse.
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_pattern(manifest: Manifest) -> str:
    number = r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?"
    cells = []
    for f in manifest.features:
        if f.kind == "category":
            cell = "(" + "|".join(_regex_escape(_csv_cell(c)) for c in f.categories or []) + ")"
        else:
            cell = number
        cells.append(f"({cell})?" if f.nullable else cell)
    header = ",".join(_regex_escape(_csv_cell(f.name)) for f in manifest.features)
    row = ",".join(cells)
    return f"^{header}(\\r?\\n{row}){{1,20}}\\r?\\n?$"
