"""Profile one tabserve worker with py-spy while it is under load, and summarise the profile.

`py-spy record --pid PID --native --format speedscope` writes a file that speedscope.app (or any
speedscope viewer) opens as a flame graph; `top_frames` reads it back for the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


class ProfileError(RuntimeError):
    """py-spy is missing or could not record."""


def pyspy() -> str:
    """The py-spy executable (installed in the venv from PyPI `py-spy`)."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfileError("py-spy is not installed: `.venv/bin/pip install py-spy`")
    return found


def start_record(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Start recording `pid` (native frames included) for `seconds` into a speedscope file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            pyspy(),
            "record",
            "--pid",
            str(pid),
            "--native",
            "--duration",
            str(seconds),
            "--rate",
            "100",
            "--format",
            "speedscope",
            "--output",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish_record(proc: subprocess.Popen[bytes], seconds: int, out: Path) -> Path:
    """Wait (bounded) for py-spy; the profile file must exist afterwards."""
    try:
        output, _ = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if proc.returncode != 0 or not out.exists():
        raise ProfileError(
            f"py-spy failed ({proc.returncode}): {output.decode(errors='replace')[-500:]}"
        )
    return out


def top_frames(path: Path, n: int = 15) -> list[tuple[str, float]]:
    """Where the samples were: per thread, then the innermost Python function of each sample.

    Native frames (libc, ONNX Runtime, uvloop) are charged to the Python function that called
    them, so idle waits read as `epoll`/`Condition.wait` callers and work as its Python owner.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    frames = data["shared"]["frames"]
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0.0
    for profile in data["profiles"]:
        thread = str(profile.get("name", "?"))
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            python = [frames[i] for i in stack if str(frames[i].get("file") or "").endswith(".py")]
            leaf = python[-1] if python else (frames[stack[-1]] if stack else None)
            if leaf is None:
                continue
            name = f"{leaf['name']} ({Path(leaf.get('file') or '?').name}:{leaf.get('line', 0)})"
            own[name] += weight
            threads[f"thread {thread}"] += weight
            total += weight
    if not total:
        return []
    per_thread = [(name, count / total) for name, count in threads.most_common(4)]
    return per_thread + [(name, count / total) for name, count in own.most_common(n)]
