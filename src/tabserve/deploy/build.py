"""`tabserve build`: from a registered model to an image, with the Docker engine's BuildKit.

The build context is the `docker` target of `tabserve deploy` in a temporary folder: the
Dockerfile, the tabserve wheel, the lock and a registry holding only this model version.
Build secrets (`--secret id=...,src=...`) go to BuildKit as they are and never into a layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tabserve.deploy.render import DeployOptions, render_ref
from tabserve.errors import DeployError, UsageError
from tabserve.settings import Settings


def docker_client() -> str:
    """The Docker client to run: TABSERVE_DOCKER, else `docker` on PATH."""
    return os.environ.get("TABSERVE_DOCKER") or "docker"


def check_secret(spec: str) -> str:
    """A BuildKit secret spec `id=NAME,src=PATH` (or `env=VAR`), checked before the build."""
    parts = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    if not parts.get("id") or not (parts.get("src") or parts.get("source") or parts.get("env")):
        raise UsageError(f"--secret {spec!r}: use id=NAME,src=PATH (or id=NAME,env=VAR)")
    src = parts.get("src") or parts.get("source")
    if src and not Path(src).is_file():
        raise UsageError(f"--secret {spec!r}: {src} is not a file")
    return spec


@dataclass
class BuildResult:
    """What `tabserve build` made: the tag, and whether it was pushed."""

    tag: str
    pushed: bool


def _run(cmd: list[str], what: str, quiet: bool) -> None:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - the client and arguments are built here, no shell
            cmd,
            env=env,
            check=False,
            capture_output=quiet,
            text=True,
        )
    except FileNotFoundError as error:
        raise DeployError(
            f"the Docker client {cmd[0]!r} was not found: install Docker or set TABSERVE_DOCKER "
            "to the client's path"
        ) from error
    if done.returncode != 0:
        tail = "\n".join(((done.stderr or "") + (done.stdout or "")).strip().splitlines()[-15:])
        raise DeployError(f"{what} failed (exit {done.returncode}){': ' + tail if tail else ''}")


def build_image(
    ref: str,
    tag: str,
    *,
    push: bool = False,
    secrets: Sequence[str] = (),
    base_image: str | None = None,
    network: str | None = None,
    options: DeployOptions | None = None,
    settings: Settings | None = None,
    quiet: bool = False,
    keep_context: Path | None = None,
) -> BuildResult:
    """Render ref's build context, `docker build` it as tag, and push it when asked."""
    settings = settings or Settings()
    secrets = [check_secret(spec) for spec in secrets]
    client = docker_client()
    options = options or DeployOptions.from_settings(settings)
    options.image = tag
    if base_image:
        options.base_image = base_image
    workdir = Path(tempfile.mkdtemp(prefix="tabserve-build-"))
    try:
        context = keep_context or workdir / "context"
        render_ref(ref, context, "docker", options, settings)
        cmd = [client, "build", "-t", tag, "--build-arg", f"BASE_IMAGE={options.base_image}"]
        if network:
            cmd += ["--network", network]
        for spec in secrets:
            cmd += ["--secret", spec]
        cmd.append(str(context))
        _run(cmd, f"docker build of {tag}", quiet)
        if push:
            _run([client, "push", tag], f"docker push of {tag}", quiet)
        return BuildResult(tag=tag, pushed=push)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
