"""`tabserve build` and `tabserve deploy` from the command line: errors a user can make."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tabserve.cli import app
from tabserve.deploy.build import check_secret
from tabserve.deploy.wheel import build_wheel
from tabserve.errors import UsageError

runner = CliRunner()


def test_a_missing_docker_client_is_a_clear_error(
    iris_artifact: tuple[object, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, artifact = iris_artifact
    monkeypatch.setenv("TABSERVE_HOME", str(artifact.parents[2]))
    monkeypatch.setenv("TABSERVE_DOCKER", "/nonexistent/docker")
    result = runner.invoke(app, ["build", "iris:1", "-t", "tabserve-iris:1"])
    assert result.exit_code == 2
    assert "TABSERVE_DOCKER" in result.output


def test_an_unknown_target_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "iris", "--out", str(tmp_path), "--target", "swarm"])
    assert result.exit_code == 2
    assert "docker, compose, k8s, all" in result.output


def test_deploy_writes_the_files(
    iris_artifact: tuple[object, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, artifact = iris_artifact
    monkeypatch.setenv("TABSERVE_HOME", str(artifact.parents[2]))
    result = runner.invoke(app, ["deploy", "iris", "--out", str(tmp_path / "o"), "--target", "k8s"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "k8s" / "deployment.yaml").is_file()
    assert (tmp_path / "o" / "Dockerfile").is_file()
    assert not (tmp_path / "o" / "compose.yaml").exists()


@pytest.mark.parametrize(
    "spec", ["pip_conf", "id=pip_conf", "src=/etc/hostname", "id=x,src=/nonexistent"]
)
def test_a_malformed_secret_spec_is_refused(spec: str) -> None:
    with pytest.raises(UsageError):
        check_secret(spec)


def test_the_wheel_holds_the_package_its_templates_and_the_entry_point(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        entry_points = zf.read(record.replace("RECORD", "entry_points.txt")).decode()
        listed = {line.split(",")[0] for line in zf.read(record).decode().splitlines()}
    assert "tabserve/deploy/templates/Dockerfile.j2" in names
    assert "tabserve/cli.py" in names
    assert not [n for n in names if "__pycache__" in n]
    assert "tabserve = tabserve.cli:main" in entry_points
    assert listed == names
    # Reproducible: the same files give the same bytes, so Docker's cache holds.
    assert build_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()
