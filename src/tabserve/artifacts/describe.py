"""What a fitted pipeline says about its inputs when no training data comes with it.

An imported model may arrive without data: its ColumnTransformer still tells which columns
are categories (and which categories it saw), an imputer tells which may be missing, and a
leading StandardScaler holds the training mean and standard deviation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabserve.types import Feature

_CHECK_ROWS = 2000


def _steps(model: Any) -> list[Any]:
    return [step for _, step in model.steps] if hasattr(model, "steps") else [model]


def _walk(step: Any) -> list[Any]:
    """The step and every estimator nested in it (pipelines inside column transformers)."""
    found = [step]
    for child in _steps(step) if hasattr(step, "steps") else []:
        found += _walk(child)
    return found


def _column_roles(model: Any, columns: list[str]) -> dict[str, dict[str, Any]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    roles: dict[str, dict[str, Any]] = {c: {} for c in columns}
    for step in _steps(model):
        if not isinstance(step, ColumnTransformer):
            continue
        for _, transformer, cols in step.transformers_:
            selected = [columns[c] if isinstance(c, int | np.integer) else str(c) for c in cols]
            for part in _walk(transformer):
                if isinstance(part, OneHotEncoder | OrdinalEncoder):
                    for col, cats in zip(selected, part.categories_, strict=False):
                        roles[col]["categories"] = [str(c) for c in cats if not pd.isna(c)]
                if isinstance(part, SimpleImputer):
                    for col in selected:
                        roles[col]["nullable"] = True
    return roles


def imputed_columns(model: Any, columns: list[str]) -> set[str]:
    """The columns the pipeline imputes, so a missing value is acceptable there."""
    return {c for c, role in _column_roles(model, columns).items() if role.get("nullable")}


def bare_features(model: Any, columns: list[str], names: list[str]) -> list[Feature]:
    """Features described from the pipeline alone: kind, categories, nullability, scaler stats."""
    from sklearn.preprocessing import StandardScaler

    roles = _column_roles(model, columns)
    first = _steps(model)[0]
    scaled = isinstance(first, StandardScaler) and getattr(first, "mean_", None) is not None
    features = []
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        role = roles[column]
        if "categories" in role:
            features.append(
                Feature(
                    name=name,
                    column=column,
                    kind="category",
                    dtype="object",
                    nullable=bool(role.get("nullable")),
                    categories=role["categories"],
                )
            )
            continue
        stats: dict[str, float] = {}
        if scaled:
            stats = {"mean": float(first.mean_[i]), "std": float(first.scale_[i])}
        features.append(
            Feature(
                name=name,
                column=column,
                kind="number",
                dtype="float64",
                nullable=bool(role.get("nullable")),
                **stats,  # type: ignore[arg-type]
            )
        )
    return features


def check_rows(model: Any, features: list[Feature]) -> pd.DataFrame:
    """Rows to check a converted runtime against scikit-learn when no data came with the model.

    Numbers are drawn around the training mean and spread where the pipeline knows them,
    categories from the seen ones; the draw is seeded so an import is reproducible.
    """
    rng = np.random.default_rng(47)
    data: dict[str, Any] = {}
    for f in features:
        if f.kind == "category":
            data[f.column] = rng.choice(
                np.asarray(f.categories or ["?"], dtype=object), _CHECK_ROWS
            )
        else:
            mean = f.mean if f.mean is not None else 0.0
            std = f.std if f.std else 1.0
            data[f.column] = mean + std * rng.standard_normal(_CHECK_ROWS) * 1.5
    return pd.DataFrame(data, columns=[f.column for f in features])
