"""The feature schema, fingerprint and environment written into every manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabserve.training.schema import environment, fingerprint, infer_features


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20.0, 30.0, np.nan, 50.0, 60.0],
            "city": ["paris", "rome", None, "rome", "oslo"],
            "count": [1, 2, 3, 4, 5],
            "flag": [True, False, True, True, False],
        }
    )


def test_numbers_have_statistics_and_a_quantile_histogram() -> None:
    age = infer_features(_frame())[0]
    assert (age.name, age.column, age.kind, age.dtype) == ("age", "age", "number", "float64")
    assert (age.min, age.max, age.mean) == (20.0, 60.0, 40.0)
    assert age.std == pytest.approx(np.std([20, 30, 50, 60]))
    assert age.nullable and age.missing_fraction == pytest.approx(0.2)
    assert age.histogram is not None
    assert age.histogram.edges[0] == 20.0 and age.histogram.edges[-1] == 60.0
    assert sum(age.histogram.counts) == 4
    assert len(age.histogram.counts) == len(age.histogram.edges) - 1


def test_categories_are_sorted_strings_and_bool_is_a_category() -> None:
    _, city, count, flag = infer_features(_frame())
    assert city.kind == "category" and city.categories == ["oslo", "paris", "rome"]
    assert city.nullable
    assert count.kind == "number" and not count.nullable and count.dtype == "int64"
    assert flag.kind == "category" and flag.categories == ["False", "True"]


def test_client_names_and_imputed_columns() -> None:
    frame = _frame()[["count", "flag"]]
    count, flag = infer_features(frame, ["n", "f"], nullable={"count"})
    assert (count.name, count.column, count.nullable) == ("n", "count", True)
    assert (flag.name, flag.column, flag.nullable) == ("f", "flag", False)


def test_constant_column_has_one_bin() -> None:
    (only,) = infer_features(pd.DataFrame({"x": [3.0, 3.0, 3.0]}))
    assert only.histogram is not None
    assert only.histogram.edges == [3.0, 3.0] and only.histogram.counts == [3]


def test_fingerprint_is_stable_and_sees_every_change() -> None:
    X, y = _frame(), pd.Series([0, 1, 0, 1, 0], name="target")
    same = fingerprint(X.copy(), y.copy())
    assert fingerprint(X, y) == same
    changed = X.copy()
    changed.loc[0, "count"] = 9
    assert fingerprint(changed, y) != same
    assert fingerprint(X.rename(columns={"age": "years"}), y) != same
    assert fingerprint(X, y.replace({0: 1})) != same
    assert fingerprint(X.astype({"count": "float64"}), y) != same


def test_environment_names_exact_versions() -> None:
    env = environment()
    for package in ("python", "scikit-learn", "numpy", "scipy", "pandas", "skops", "onnx"):
        assert env[package][0].isdigit(), package
    import sklearn

    assert env["scikit-learn"] == sklearn.__version__


def test_categories_carry_their_training_counts_for_drift() -> None:
    _, city, count, flag = infer_features(_frame())
    assert city.category_counts == {"oslo": 1, "paris": 1, "rome": 2}  # the missing one is not
    assert flag.category_counts == {"False": 2, "True": 3}
    assert count.category_counts is None


def test_a_manifest_written_before_category_counts_still_decodes() -> None:
    import msgspec

    from tabserve.types import Feature

    (city,) = infer_features(_frame()[["city"]])
    old = msgspec.json.decode(msgspec.json.encode(city))
    del old["category_counts"]
    decoded = msgspec.json.decode(msgspec.json.encode(old), type=Feature)
    assert decoded.category_counts is None
    assert decoded.categories == ["oslo", "paris", "rome"]
    assert msgspec.structs.replace(decoded, category_counts=city.category_counts) == city
