"""Run the compose stack's parts as local processes, from what compose.yaml itself names.

compose.yaml is the single source: each service's command, environment, volumes and secrets
are read from it, and only what cannot be the same outside a container is mapped —
compose hostnames to loopback ports, container paths to the host files compose mounts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Compose:
    """compose.yaml of a rendered folder, with the path mappings compose would make."""

    folder: Path

    @property
    def spec(self) -> dict[str, Any]:
        return dict(yaml.safe_load((self.folder / "compose.yaml").read_text()))

    def service(self, name: str) -> dict[str, Any]:
        return dict(self.spec["services"][name])

    def secret_files(self) -> dict[str, Path]:
        """/run/secrets/NAME -> the host file compose mounts there."""
        return {
            f"/run/secrets/{name}": (self.folder / spec["file"]).resolve()
            for name, spec in self.spec["secrets"].items()
        }

    def bind_mounts(self, service: str) -> dict[str, Path]:
        """Container path -> host path for the service's bind mounts (./...)."""
        mounts = {}
        for volume in self.service(service).get("volumes", []):
            host, container = volume.split(":")[:2]
            if host.startswith("./"):
                mounts[container] = (self.folder / host).resolve()
        return mounts


def map_text(text: str, mapping: dict[str, str]) -> str:
    """Replace each container path or host:port with its local counterpart, longest first."""
    for old in sorted(mapping, key=len, reverse=True):
        text = text.replace(old, mapping[old])
    return text


def local_env(environment: dict[str, Any], mapping: dict[str, str]) -> dict[str, str]:
    """The service's environment with compose names mapped; the test's own env underneath."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")}
    env.update({k: map_text(str(v), mapping) for k, v in environment.items()})
    return env


def local_command(command: list[str]) -> list[str]:
    """The command with the venv's console scripts for tabserve and python."""
    exe = command[0]
    if exe == "tabserve":
        return [str(Path(sys.executable).with_name("tabserve")), *command[1:]]
    if exe == "python":
        return [sys.executable, *command[1:]]
    if exe == "nginx":
        return [shutil.which("nginx") or "/usr/sbin/nginx", *command[1:]]
    return command


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a process with its output in a log file."""
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL past the timeout."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
