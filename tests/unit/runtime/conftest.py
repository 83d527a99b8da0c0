"""Fitted pipelines shared by the runtime tests (fitted once per session)."""

from __future__ import annotations

import pytest
from tests.unit.runtime import models


@pytest.fixture(scope="session")
def iris_model() -> models.Fitted:
    """The lecture's default pipeline (StandardScaler + GradientBoostingClassifier) on Iris."""
    X, y = models.iris()
    return models.fit(X, y, "classification")


@pytest.fixture(scope="session")
def shop_model() -> models.Fitted:
    """The ColumnTransformer pipeline on mixed data with missing values."""
    X, bought, _ = models.shop()
    return models.fit(X, bought, "classification", n_estimators=30)
