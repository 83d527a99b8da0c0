"""Fixtures for the artifact tests: a small fitted Iris pipeline and its manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tests.unit.artifacts.helpers import NAMES

from tabserve.settings import Settings


@pytest.fixture(scope="session")
def iris_pipeline() -> Pipeline:
    """The lecture's pipeline, fitted quickly (few trees) on the Iris data."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = NAMES
    model = Pipeline(
        [("scale", StandardScaler()), ("gbm", GradientBoostingClassifier(n_estimators=5))]
    )
    return model.fit(X, y)


@pytest.fixture
def settings(tabserve_home: Path) -> Settings:
    """Settings read from the test's environment (its own TABSERVE_HOME)."""
    return Settings()
