"""`POST /admin/reload` across every worker of one server: one request, one answer for all.

The request reaches one worker. The master makes one folder that every worker shares
(`prepare_dir`, before the fork; its path is in the environment as `ENV`). The answering
worker writes a request token there, polls the registry itself, and waits until each of the
server's workers has acknowledged that token (or a later one) with its own report. The other
workers look at the token file every `CHECK_S` seconds (one `stat`) and poll at once when it
changes; a worker started after the request (a respawn) sees it on its first look and answers
too. Without the folder (`serve --dev`, a test's app in one process) the worker answers alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

__all__ = ["CHECK_S", "ENV", "ReloadBoard", "prepare_dir", "remove_dir"]

ENV = "TABSERVE_RELOAD_DIR"
CHECK_S = 0.1  # how often a worker looks for a reload another worker was asked for
_REQUEST = "request"
_ACK_PREFIX = "ack-"
_WAIT_STEP_S = 0.02


class _Ack(msgspec.Struct):
    token: int
    pid: int
    models: list[dict[str, Any]]


def prepare_dir(path: str | os.PathLike[str]) -> Path:
    """In the server's master, before forking: create the shared folder and export its path."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder)
    return folder


def remove_dir(path: str | os.PathLike[str]) -> None:
    """In the master, after the workers are gone."""
    os.environ.pop(ENV, None)
    shutil.rmtree(path, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    """Replace `path` whole: a reader sees the old content or the new, never a part."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_bytes(data)
    temp.replace(path)


class ReloadBoard:
    """One worker's view of the shared folder: ask for a reload, notice one, acknowledge it."""

    def __init__(self, folder: Path, pid: int | None = None) -> None:
        self.folder = folder
        self.pid = os.getpid() if pid is None else pid
        self.seen = 0  # the newest token this worker has polled for
        self._stat: tuple[int, int] | None = None

    @classmethod
    def from_env(cls) -> ReloadBoard | None:
        """The board of the server this worker belongs to, or None outside `tabserve serve`."""
        folder = os.environ.get(ENV)
        return cls(Path(folder)) if folder and Path(folder).is_dir() else None

    def request(self) -> int:
        """Ask every worker to poll now; returns the token their acknowledgements must reach."""
        token = max(time.time_ns(), self.seen + 1)
        self.seen = token  # this worker polls for it itself
        _write(self.folder / _REQUEST, str(token).encode())
        return token

    def changed(self) -> int | None:
        """The token of a reload asked for since this worker last polled for one, else None."""
        path = self.folder / _REQUEST
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self._stat:
            return None
        self._stat = stamp
        try:
            token = int(path.read_text())
        except (FileNotFoundError, ValueError):
            self._stat = None  # replaced while it was read: look again next time
            return None
        if token <= self.seen:
            return None
        self.seen = token
        return token

    def acknowledge(self, token: int, models: list[dict[str, Any]]) -> None:
        """Say this worker polled for `token`, with what it serves now."""
        ack = _Ack(token, self.pid, models)
        _write(self.folder / f"{_ACK_PREFIX}{self.pid}.json", msgspec.json.encode(ack))

    def acknowledged(self, token: int) -> list[dict[str, Any]]:
        """The reports of live workers that polled for `token` or a later reload, by pid."""
        acks = []
        for path in sorted(self.folder.glob(f"{_ACK_PREFIX}*.json")):
            try:
                ack = msgspec.json.decode(path.read_bytes(), type=_Ack)
            except (FileNotFoundError, msgspec.DecodeError):
                continue
            if ack.token >= token and psutil.pid_exists(ack.pid):
                acks.append({"pid": ack.pid, "models": ack.models})
        return acks

    async def wait(self, token: int, workers: int, timeout: float) -> list[dict[str, Any]]:
        """The acknowledgements of `token` once `workers` have given one, or at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            acks = await asyncio.to_thread(self.acknowledged, token)
            if len(acks) >= workers or time.monotonic() >= deadline:
                return acks
            await asyncio.sleep(_WAIT_STEP_S)
