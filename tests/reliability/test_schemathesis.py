"""Schemathesis against /openapi.json of the production server: every check (positive-data
acceptance and negative-data rejection included), every operation, a fixed seed, 0 failures."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tabserve.types import Manifest
from tests.support.models import copy_home
from tests.support.server import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    trained: tuple[Manifest, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    _, _, registry = trained
    root = tmp_path_factory.mktemp("schemathesis")
    running = Server(copy_home(registry, root / "home"), root / "serve.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.url}/openapi.json",
        "--checks", "all",
        "--mode", "all",  # valid data must be accepted, invalid data refused
        "--seed", "0",
        "--max-examples", "50",
        "--max-failures", "50",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit",
        "--report-junit-path", str(tmp_path / "junit.xml"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    tested = re.search(r"Tested:\s+(\d+)", output)
    selected = re.search(r"Selected:\s+(\d+)/(\d+)", output)
    print(
        f"schemathesis: exit={done.returncode} cases={generated and generated.group(1)} "
        f"operations tested={tested and tested.group(1)} of {selected and selected.group(2)}"
    )
    assert done.returncode == 0, output[-8000:]
    assert generated is not None and int(generated.group(1)) >= 1000, output[-3000:]
    assert tested is not None and selected is not None
    assert int(tested.group(1)) == int(selected.group(2)) >= 20  # every operation
    assert "Internal Server Error" not in server.output()
