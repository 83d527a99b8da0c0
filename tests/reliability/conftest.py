"""Fixtures of the reliability suite: one trained registry per session, copied per server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabserve.types import Manifest
from tests.reliability.support import lecture_targets
from tests.support.models import train_iris


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path, Path]:
    """The lecture's Iris model trained once: (manifest, artifact folder, registry home)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    manifest, artifact = train_iris(home)
    return manifest, artifact, home


@pytest.fixture(scope="session")
def targets(trained: tuple[Manifest, Path, Path]) -> list[tuple[str, bytes]]:
    """150 lecture GETs with the bytes each must answer."""
    manifest, artifact, _ = trained
    return lecture_targets(manifest, artifact)
