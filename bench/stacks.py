"""The three stacks the bench compares, each as a `Server` ready to start.

- lecture: the lecture's Flask app on gunicorn, 3 sync workers, serving its own pickle;
- ceiling: a constant-answer raw ASGI app on uvicorn (uvloop + httptools), 1 worker; the same
  app on granian, and a constant-answer grpc.aio servicer, for reference;
- tabserve: `tabserve train` then `tabserve serve`, exactly as the README runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import grpc_load
from bench.servers import Server, clean_env, free_port

BENCH_DIR = Path(__file__).resolve().parent
READY_PATH = "/v2/health/ready"
LECTURE_READY = "/?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
TRAIN_TIMEOUT_S = 300.0


def default_tabserve() -> Path:
    """The `tabserve` executable installed beside the running Python (the venv's)."""
    return Path(sys.executable).parent / "tabserve"


def build_lecture_model(workdir: Path) -> Path:
    """Train and pickle the lecture's pipeline in a subprocess, as its `build_model.py` does."""
    path = workdir / "model.pickle"
    subprocess.run(
        [sys.executable, str(BENCH_DIR / "lecture_app.py"), "build", str(path)],
        check=True,
        timeout=TRAIN_TIMEOUT_S,
        capture_output=True,
    )
    return path


def lecture(model: Path, logs: Path) -> Server:
    """The lecture's deployment: `gunicorn -w 3 -t 360 wsgi:app` (sync workers)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "3",
        "-b",
        f"127.0.0.1:{port}",
        "-t",
        "360",
        "--chdir",
        str(BENCH_DIR),
        "lecture_app:app",
    ]
    env = {"LECTURE_MODEL_PICKLE": str(model)}
    return Server("lecture", argv, port, LECTURE_READY, env=env, log=logs / "lecture.log")


def ceiling(logs: Path) -> Server:
    """The raw ASGI constant on uvicorn with uvloop and httptools, 1 worker, no access log."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "ceiling:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Server("ceiling", argv, port, "/", log=logs / "ceiling.log")


def ceiling_granian(logs: Path) -> Server:
    """The same constant app on granian (tabserve's HTTP server), 1 worker, uvloop."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
        "--working-dir",
        str(BENCH_DIR),
        "ceiling:app",
    ]
    return Server("ceiling-granian", argv, port, "/", log=logs / "ceiling-granian.log")


def grpc_ceiling(logs: Path) -> Server:
    """The constant-answer grpc.aio servicer (grpc_ceiling.py), 1 process, uvloop."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    argv = [sys.executable, str(BENCH_DIR / "grpc_ceiling.py"), "--port", str(port)]
    return Server(
        "ceiling-grpc",
        argv,
        port,
        "",
        log=logs / "ceiling-grpc.log",
        ready=lambda: grpc_load.server_ready(target),
    )


def train_tabserve(tabserve: Path, home: Path, logs: Path) -> None:
    """`tabserve train` (the default Iris model) into `home`."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "tabserve-train.log").open("wb") as log:
        subprocess.run(
            [str(tabserve), "train"],
            env=clean_env(_tabserve_env(home)),
            check=True,
            timeout=TRAIN_TIMEOUT_S,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def tabserve_server(
    tabserve: Path,
    home: Path,
    logs: Path,
    *,
    env: dict[str, str] | None = None,
    label: str = "tabserve",
    grpc_port: int | None = None,
) -> Server:
    """`tabserve serve` with its defaults on a free port (validation, metrics, prediction log on).

    With `grpc_port`, the same server also answers the Open Inference Protocol over gRPC there.
    """
    port = free_port()
    env = {**_tabserve_env(home), **(env or {})}
    argv = [str(tabserve), "serve", "--port", str(port)]
    if grpc_port is not None:
        argv += ["--grpc-port", str(grpc_port)]
    return Server(
        label, argv, port, READY_PATH, env=env, cwd=home.parent, log=logs / f"{label}.log"
    )


def _tabserve_env(home: Path) -> dict[str, str]:
    return {"TABSERVE_HOME": str(home)}
