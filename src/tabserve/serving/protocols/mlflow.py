"""MLflow's scoring server: `POST /invocations` with a DataFrame in JSON or CSV -> `{"predictions": [...]}`.

JSON bodies hold exactly one of `dataframe_split`, `dataframe_records`, `instances` or
`inputs` (plus optional `params`, ignored); `text/csv` bodies have a header row.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from tabserve.errors import BadRequestError
from tabserve.serving.protocols.kserve_v1 import rows_from
from tabserve.serving.validation import Schema, invalid

__all__ = ["FORMATS", "decode_csv", "decode_json"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_json(schema: Schema, body: Any) -> np.ndarray:
    """Rows of an MLflow JSON body."""
    if not isinstance(body, dict):
        raise BadRequestError(
            "the body must be a JSON object with one of " + ", ".join(FORMATS),
            [{"loc": ["body"], "msg": "not an object"}],
        )
    given = [key for key in FORMATS if key in body]
    if len(given) != 1:
        raise invalid(
            ("body",),
            "send exactly one of "
            + ", ".join(FORMATS)
            + (f" (got {', '.join(given)})" if given else ""),
            "shape",
        )
    key = given[0]
    unknown = [k for k in body if k not in (key, "params")]
    if unknown:
        raise invalid(
            (unknown[0],),
            f"unknown field {unknown[0]!r}: send {key} and optionally params",
            "extra_field",
        )
    if not isinstance(body.get("params", {}), dict):
        raise invalid(("params",), "params must be an object", "type")
    value = body[key]
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise invalid((key,), "dataframe_records must be a list of row objects", "shape")
        return schema.from_records(value, (key,))
    if key == "dataframe_split":
        return _split(schema, value)
    return rows_from(schema, value, key)


def _split(schema: Schema, value: Any) -> np.ndarray:
    key = "dataframe_split"
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise invalid(
            (key,), 'dataframe_split must be {"columns": [...], "data": [[...], ...]}', "shape"
        )
    extra = [k for k in value if k not in ("columns", "data", "index")]
    if extra:
        raise invalid((key, extra[0]), f"unknown field {extra[0]!r} in {key}", "extra_field")
    if not isinstance(value.get("index", []), list):
        raise invalid((key, "index"), "index must be a list", "type")
    if "columns" in value and not isinstance(value["columns"], list):
        raise invalid((key, "columns"), "columns must be a list of feature names", "shape")
    data = value["data"]
    columns = value.get("columns")
    if columns is None or columns == schema.names:
        return schema.from_lists(data, (key, "data"))
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise invalid((key, "columns"), "columns must be a list of feature names", "shape")
    if len(set(columns)) != len(columns):
        raise invalid((key, "columns"), "a column is named twice", "shape")
    records = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise invalid(
                (key, "data", i), f"row {i} must be a list of {len(columns)} values", "shape"
            )
        records.append(dict(zip(columns, row, strict=True)))
    return schema.from_records(records, (key, "data"))


def decode_csv(schema: Schema, body: bytes) -> np.ndarray:
    """Rows of a CSV body with a header row; empty cells are missing values."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequestError(
            "the CSV body is not valid UTF-8", [{"loc": ["body"], "msg": "invalid UTF-8"}]
        ) from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise BadRequestError(
            f"the CSV body cannot be parsed: {error}", [{"loc": ["body"], "msg": "invalid CSV"}]
        ) from None
    lines = [line for line in lines if line]
    if not lines:
        raise invalid(("csv",), "the CSV body is empty: send a header row and rows", "empty")
    header, rows = lines[0], lines[1:]
    numeric = {f.name for f in schema.features if f.kind == "number"}
    records = []
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise invalid(
                ("csv", i),
                f"line {i} has {len(row)} cells but the header has {len(header)}",
                "shape",
            )
        record: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=True):
            record[name] = _cell(cell, name in numeric)
        records.append(record)
    return schema.from_records(records, ("csv",))


def _cell(cell: str, numeric: bool) -> Any:
    if cell == "":
        return None
    if not numeric:
        return cell
    try:
        return float(cell)
    except ValueError:
        return cell  # validation names it as a string where a number is due
