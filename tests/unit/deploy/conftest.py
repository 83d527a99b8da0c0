"""Fixtures for the deploy tests: one trained model and its rendered files per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.deploy.helpers import render_all, self_signed_pair, trained_iris

from tabserve.types import Manifest


@pytest.fixture(scope="session")
def iris_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:
    """The lecture's Iris model, trained once, in a registry of its own."""
    return trained_iris(tmp_path_factory.mktemp("deploy-home") / "home")


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key."""
    return self_signed_pair(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def rendered(
    iris_artifact: tuple[Manifest, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every target rendered with the defaults."""
    manifest, artifact = iris_artifact
    return render_all(manifest, artifact, tmp_path_factory.mktemp("deploy") / "out")


@pytest.fixture(scope="session")
def rendered_tls(
    iris_artifact: tuple[Manifest, Path],
    tls_pair: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Every target rendered with nginx's TLS server on."""
    manifest, artifact = iris_artifact
    cert, key = tls_pair
    out = tmp_path_factory.mktemp("deploy-tls") / "out"
    return render_all(manifest, artifact, out, tls_cert=cert, tls_key=key)
