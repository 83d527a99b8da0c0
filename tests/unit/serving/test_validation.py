"""Validation against the manifest's schema: rows in, a typed array out, or errors naming row and feature."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tabserve.errors import ValidationError
from tabserve.serving.validation import Schema
from tabserve.types import Manifest


def test_lists_records_and_columns_give_the_same_rows(iris: tuple[Manifest, Any]) -> None:
    schema = Schema(iris[0])
    lists = schema.from_lists([[7.7, 3, 6.1, 2.3]], ("instances",))
    records = schema.from_records(
        [{"petal_width": 2.3, "petal_length": 6.1, "sepal_width": 3, "sepal_length": 7.7}], ("x",)
    )
    columns = schema.from_columns(
        {"sepal_length": [7.7], "sepal_width": [3], "petal_length": [6.1], "petal_width": [2.3]},
        ("x",),
    )
    assert lists.dtype == np.float64
    np.testing.assert_array_equal(lists, records)
    np.testing.assert_array_equal(lists, columns)


def test_numeric_matrix_refuses_nan_inf_and_wrong_shape(iris: tuple[Manifest, Any]) -> None:
    schema = Schema(iris[0])
    with pytest.raises(ValidationError) as nan:
        schema.from_matrix(np.array([[1.0, math.nan, 1.0, 1.0]]), ("inputs", 0))
    assert nan.value.details[0]["loc"] == ["inputs", 0, 0, "sepal_width"]
    with pytest.raises(ValidationError):
        schema.from_matrix(np.array([[1.0, math.inf, 1.0, 1.0]]), ("inputs", 0))
    with pytest.raises(ValidationError):
        schema.from_matrix(np.zeros((2, 3)), ("inputs", 0))


def test_nullable_and_category_features(mixed: tuple[Manifest, Any]) -> None:
    schema = Schema(mixed[0])
    out = schema.from_records([{"age": None, "city": "nice"}], ("rows",))
    assert out.dtype == object and math.isnan(out[0, 0]) and out[0, 1] == "nice"
    with pytest.raises(ValidationError) as error:
        schema.from_records([{"age": 3, "city": 4}, {"age": "x", "city": "rome"}], ("rows",))
    locs = [d["loc"] for d in error.value.details]
    assert locs == [["rows", 0, "city"], ["rows", 1, "age"], ["rows", 1, "city"]]


def test_range_check_is_exact(iris: tuple[Manifest, Any]) -> None:
    schema = Schema(iris[0])
    inside = np.array([[f.min for f in iris[0].features]], dtype=np.float64)
    assert schema.all_in_range(inside)
    assert not schema.all_in_range(inside - 1)
    assert schema.all_in_range(np.vstack([inside, inside]))
    assert not schema.all_in_range(np.vstack([inside, inside + 100]))
