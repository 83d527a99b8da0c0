"""The image is built and run for real: `tabserve build`, push to a local registry, pull it
back, and run it read-only without capabilities on the host's loopback (CONTAINERS.md)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support import docker
from tests.support.net import free_port, wait_until
from tests.unit.deploy.helpers import LECTURE_BODY, LECTURE_QUERY, trained_iris

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.Engine]:
    try:
        found = docker.engine()
    except docker.DockerUnavailable as error:
        pytest.fail(str(error))  # loudly: this test never passes without running
    try:
        yield found
    finally:
        docker.stop_engine(found)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_build_push_pull_and_run_read_only(engine: docker.Engine, tmp_path: Path) -> None:
    base = docker.base_image(engine)
    home = tmp_path / "home"
    manifest, _ = trained_iris(home)
    token = f"tabserve-secret-{secrets.token_hex(12)}"
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\n# private index token: {token}\ntimeout = 120\n")
    with docker.local_registry(tmp_path, free_port()) as registry:
        wait_until(lambda: _ok(f"http://{registry.host}/v2/"), 30, "the local registry")
        tag = f"{registry.host}/tabserve-iris:{uuid.uuid4().hex[:8]}"
        env = {
            **engine.env,
            "TABSERVE_HOME": str(home),
            "TABSERVE_DOCKER": engine.client,
        }
        build = subprocess.run(
            [str(Path(sys.executable).with_name("tabserve")), "build", manifest.ref, "-t", tag,
             "--push", "--secret", f"id=pip_conf,src={pip_conf}", "--base-image", base,
             "--network", "host"],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

        engine.run("image", "rm", tag)
        assert not engine.has_image(tag)
        engine.run("pull", tag, timeout=300)

        port = free_port()
        container = engine.run(
            "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-e", f"TABSERVE_PORT={port}", "-e", "TABSERVE_HOST=127.0.0.1",
            "-e", "TABSERVE_WORKERS=1", tag,
        ).stdout.strip()  # fmt: skip
        try:
            assert engine.run("exec", container, "id", "-u").stdout.strip() not in {"", "0"}

            def healthy() -> bool:
                state = engine.run(
                    "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", container
                ).stdout.split()
                if state[0] != "running":
                    logs = engine.run("logs", container, check=False)
                    raise AssertionError(logs.stdout[-3000:] + logs.stderr[-3000:])
                return state[1] == "healthy"

            wait_until(healthy, 180, "the container's HEALTHCHECK", interval=1)
            response = httpx.get(f"http://127.0.0.1:{port}/?{LECTURE_QUERY}", timeout=10)
            assert response.status_code == 200
            assert response.content == LECTURE_BODY

            history = engine.run("history", "--no-trunc", tag).stdout
            inspect = engine.run("image", "inspect", tag).stdout
            assert token not in history and token not in inspect
        finally:
            engine.run("rm", "-f", "-v", container, check=False)
            engine.run("image", "rm", tag, check=False)
