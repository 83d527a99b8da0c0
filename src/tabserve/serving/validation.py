"""Rows from decoded payloads, checked against the manifest's feature schema. No transport here.

Every protocol codec ends here: a list of row lists, a list of row objects, a dict of columns,
or a numeric tensor becomes the 2-D array a Runtime takes (float64 when every feature is a
number, NaN = missing; else dtype object with floats, category strings and None). Anything
wrong raises `ValidationError` whose details name the row and feature:
`{"loc": ["instances", 3, "petal_width"], "msg": "..."}`.

The common case (well-typed numbers) runs through msgspec.convert and numpy; only a payload
that fails that fast path is walked cell by cell, to say exactly what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from tabserve.errors import ValidationError
from tabserve.types import Feature, Manifest

__all__ = ["MAX_DETAILS", "Loc", "Schema"]

MAX_DETAILS = 20  # enough to fix a request; never an unbounded error body

Loc = tuple[str | int, ...]
_NUMBER_ROWS = list[list[float | None]]
_NUMBERS = list[float | None]


def _detail(loc: Sequence[str | int], msg: str, reason: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "reason": reason}


def raise_details(details: list[dict[str, Any]]) -> None:
    """Raise one ValidationError for the collected details (reason kept for the metrics only)."""
    if not details:
        return
    first = details[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    error = ValidationError(
        f"{where}: {first['msg']}{more}",
        [{"loc": d["loc"], "msg": d["msg"]} for d in details[:MAX_DETAILS]],
    )
    error.reason = first["reason"]  # type: ignore[attr-defined]
    raise error


def invalid(loc: Sequence[str | int], msg: str, reason: str) -> ValidationError:
    """One ValidationError with one detail."""
    error = ValidationError(
        f"{'.'.join(str(p) for p in loc)}: {msg}", [{"loc": list(loc), "msg": msg}]
    )
    error.reason = reason  # type: ignore[attr-defined]
    return error


class Schema:
    """What validation needs from a manifest, precomputed once per model version."""

    def __init__(self, manifest: Manifest, max_batch_rows: int = 10_000) -> None:
        self.manifest = manifest
        self.features: list[Feature] = list(manifest.features)
        self.names = [f.name for f in self.features]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.width = len(self.features)
        self.all_numeric = manifest.all_numeric
        self.nullable = np.array([f.nullable for f in self.features], dtype=bool)
        self.any_strict = not bool(self.nullable.all())
        self.categories = [
            frozenset(f.categories or []) if f.kind == "category" else None for f in self.features
        ]
        self.max_batch_rows = max_batch_rows
        self.dtype = np.float64 if self.all_numeric else object
        inf = math.inf
        self.bounds = [
            (-inf if f.min is None else f.min, inf if f.max is None else f.max)
            if f.kind == "number"
            else None
            for f in self.features
        ]
        self._lo = (
            np.array([f.min if f.min is not None else -inf for f in self.features])
            if self.all_numeric
            else None
        )
        self._hi = (
            np.array([f.max if f.max is not None else inf for f in self.features])
            if self.all_numeric
            else None
        )

    def all_in_range(self, rows: np.ndarray) -> bool:
        """True when every value is present and inside its training range (nothing to count).

        A cheap test before the metrics' per-feature counting, which costs ~15 us even for
        one row: for one row a Python loop, for more one numpy comparison.
        """
        if not self.all_numeric:
            return False
        if len(rows) == 1:
            for value, (lo, hi) in zip(rows[0].tolist(), self.bounds, strict=True):  # type: ignore[misc]
                if not lo <= value <= hi:  # NaN fails too
                    return False
            return True
        return bool(((rows >= self._lo) & (rows <= self._hi)).all())

    # -- batch size ---------------------------------------------------------------------------

    def check_count(self, n: int, loc: Loc) -> None:
        """Refuse an empty batch or one over max_batch_rows."""
        if n == 0:
            raise invalid(loc, "the batch is empty: send at least one row", "empty")
        if n > self.max_batch_rows:
            raise invalid(
                loc,
                f"{n} rows is more than the {self.max_batch_rows} allowed in one request "
                "(--max-batch-rows): split the batch",
                "too_many_rows",
            )

    # -- one value ----------------------------------------------------------------------------

    def cell(self, j: int, value: Any, loc: Loc, details: list[dict[str, Any]]) -> Any:
        """The value of feature j as the runtime takes it, or a detail appended and None."""
        feature = self.features[j]
        kind = type(value)
        if value is None or (kind is float and math.isnan(value)):
            if feature.nullable:
                return math.nan if self.all_numeric or feature.kind == "number" else None
            details.append(
                _detail(
                    loc,
                    f"{feature.name} is missing (null/NaN) but the model was trained without "
                    "missing values for it: send a value",
                    "missing_value",
                )
            )
            return None
        if feature.kind == "number":
            if kind is float:
                if math.isinf(value):
                    details.append(
                        _detail(loc, f"{feature.name} must be a finite number", "not_finite")
                    )
                    return None
                return value
            if kind is int or (isinstance(value, int | np.integer) and kind is not bool):
                try:
                    return float(value)
                except OverflowError:
                    details.append(
                        _detail(loc, f"{feature.name} is a number outside float64's range", "range")
                    )
                    return None
            if isinstance(value, np.floating):
                return self.cell(j, float(value), loc, details)
            details.append(
                _detail(
                    loc,
                    f"{feature.name} must be a number, not {_type_name(value)}",
                    "type",
                )
            )
            return None
        # a category
        if kind is bytes:
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                details.append(_detail(loc, f"{feature.name} is not valid UTF-8", "type"))
                return None
            kind = str
        if kind is not str:
            details.append(
                _detail(
                    loc,
                    f"{feature.name} must be a string category, not {_type_name(value)}",
                    "type",
                )
            )
            return None
        categories = self.categories[j]
        if categories is not None and value not in categories:
            shown = ", ".join(sorted(categories)[:10])
            details.append(
                _detail(
                    loc,
                    f"{value!r} is a category of {feature.name} the model never saw; "
                    f"known: {shown}",
                    "unseen_category",
                )
            )
            return None
        return value

    # -- row lists ----------------------------------------------------------------------------

    def from_lists(self, rows: Any, loc: Loc) -> np.ndarray:
        """Rows given as lists of values in feature order: [[5.1, 3.5, 1.4, 0.2], ...]."""
        if not isinstance(rows, list):
            raise invalid(loc, "expected a list of rows", "shape")
        self.check_count(len(rows), loc)
        if self.all_numeric:
            try:
                converted = msgspec.convert(rows, type=_NUMBER_ROWS)
                array = np.array(converted, dtype=np.float64)
            except (msgspec.ValidationError, ValueError, TypeError):
                pass
            else:
                if array.ndim == 2 and array.shape[1] == self.width:
                    return self.check_missing(array, loc)
        return self._walk_lists(rows, loc)

    def _walk_lists(self, rows: list[Any], loc: Loc) -> np.ndarray:
        details: list[dict[str, Any]] = []
        out = np.empty((len(rows), self.width), dtype=self.dtype)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                details.append(
                    _detail(
                        (*loc, i),
                        f"row {i} must be a list of {self.width} values "
                        f"({', '.join(self.names)}), not {_type_name(row)}",
                        "shape",
                    )
                )
            elif len(row) != self.width:
                details.append(
                    _detail(
                        (*loc, i),
                        f"row {i} has {len(row)} values but the model takes {self.width}: "
                        f"{', '.join(self.names)}",
                        "shape",
                    )
                )
            else:
                for j, value in enumerate(row):
                    out[i, j] = self.cell(j, value, (*loc, i, self.names[j]), details)
            if len(details) >= MAX_DETAILS:
                break
        raise_details(details)
        return out

    # -- row objects --------------------------------------------------------------------------

    def from_records(self, records: Any, loc: Loc) -> np.ndarray:
        """Rows given as objects keyed by feature name: [{"sepal_length": 5.1, ...}, ...]."""
        if not isinstance(records, list):
            raise invalid(loc, "expected a list of rows", "shape")
        self.check_count(len(records), loc)
        details: list[dict[str, Any]] = []
        out = np.empty((len(records), self.width), dtype=self.dtype)
        names = self.names
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                details.append(
                    _detail(
                        (*loc, i),
                        f"row {i} must be an object keyed by feature name, not {_type_name(record)}",
                        "shape",
                    )
                )
                continue
            if len(record) != self.width or any(k not in self.index for k in record):
                self._key_details(record, (*loc, i), details)
                continue
            for j, name in enumerate(names):
                out[i, j] = self.cell(j, record[name], (*loc, i, name), details)
            if len(details) >= MAX_DETAILS:
                break
        raise_details(details)
        return out

    def _key_details(
        self, record: Mapping[str, Any], loc: Loc, details: list[dict[str, Any]]
    ) -> None:
        for name in self.names:
            if name not in record:
                details.append(_detail((*loc, name), f"{name} is missing", "missing_feature"))
        for key in record:
            if key not in self.index:
                details.append(
                    _detail(
                        (*loc, str(key)),
                        f"{key!r} is not a feature of this model; features: "
                        f"{', '.join(self.names)}",
                        "extra_feature",
                    )
                )

    # -- columns ------------------------------------------------------------------------------

    def from_columns(self, columns: Mapping[str, Any], loc: Loc) -> np.ndarray:
        """Rows given as one sequence per feature name (V2 tensors per feature, dataframe columns)."""
        details: list[dict[str, Any]] = []
        self._key_details(columns, loc, details)
        raise_details(details)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise invalid(loc, "every feature must have the same number of rows", "shape")
        n = lengths.pop()
        self.check_count(n, loc)
        out = np.empty((n, self.width), dtype=self.dtype)
        for j, name in enumerate(self.names):
            column = columns[name]
            if isinstance(column, np.ndarray) and column.dtype.kind == "f" and self.all_numeric:
                out[:, j] = column
                continue
            for i, value in enumerate(column):
                out[i, j] = self.cell(j, value, (*loc, name, i), details)
            if len(details) >= MAX_DETAILS:
                break
        raise_details(details)
        if self.all_numeric:
            return self.check_missing(out, loc)
        return out

    # -- numeric matrices ---------------------------------------------------------------------

    def from_matrix(self, array: np.ndarray, loc: Loc) -> np.ndarray:
        """A numeric tensor of shape [N, n_features] (V2 `input`), as float64."""
        if array.ndim == 1 and self.width == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[1] != self.width:
            raise invalid(
                loc,
                f"shape {list(array.shape)} does not fit the model: send [N, {self.width}] "
                f"with columns {', '.join(self.names)}",
                "shape",
            )
        self.check_count(array.shape[0], loc)
        if array.dtype.kind == "b":
            raise invalid(loc, "a BOOL tensor where numbers are due", "type")
        if array.dtype.kind not in "fiu":
            raise invalid(loc, f"a {array.dtype} tensor where numbers are due", "type")
        if not self.all_numeric:
            raise invalid(
                loc,
                "this model has category features: send one tensor per feature, named after it",
                "shape",
            )
        matrix = np.asarray(array, dtype=np.float64)
        if not np.isfinite(matrix).all():
            inf = np.argwhere(np.isinf(matrix))
            if len(inf):
                i, j = (int(x) for x in inf[0])
                raise invalid(
                    (*loc, i, self.names[j]),
                    f"{self.names[j]} must be a finite number",
                    "not_finite",
                )
            return self.check_missing(matrix, loc)
        return matrix

    def check_missing(self, matrix: np.ndarray, loc: Loc) -> np.ndarray:
        """Refuse NaN in features the model was not trained to take missing."""
        if self.any_strict:
            missing = np.isnan(matrix)
            bad = missing & ~self.nullable
            if bad.any():
                details = [
                    _detail(
                        (*loc, int(i), self.names[int(j)]),
                        f"{self.names[int(j)]} is missing (null/NaN) but the model was trained "
                        "without missing values for it: send a value",
                        "missing_value",
                    )
                    for i, j in np.argwhere(bad)[:MAX_DETAILS]
                ]
                raise_details(details)
        return matrix


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__
