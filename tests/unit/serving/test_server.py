"""The production server's checks in the master, before it forks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.net import free_port

from tabserve.cpus import usable_cores
from tabserve.errors import UsageError
from tabserve.serving import server


def test_a_taken_port_fails_before_forking_and_says_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(UsageError, match="--port"):
            server._check_port("127.0.0.1", port)


def test_a_free_port_passes_the_check() -> None:
    server._check_port("127.0.0.1", free_port())


def test_each_worker_caps_blas_threads_to_its_share_of_the_cores(tmp_path: Path) -> None:
    # A fresh process (numpy's pool sized for every core), then what a worker does after fork.
    script = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from tabserve.serving.server import _worker_app\n"
        "from tabserve.settings import Settings\n"
        "before = max([p['num_threads'] for p in threadpool_info()] or [0])\n"
        "_worker_app(Settings(workers=2, threads_per_worker=None), [])\n"
        "after = max([p['num_threads'] for p in threadpool_info()] or [0])\n"
        "print(before, after)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["TABSERVE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(n) for n in done.stdout.split())
    assert before == len(os.sched_getaffinity(0))  # as numpy sized it: a thread per core
    assert after == max(1, usable_cores() // 2)  # a container's CPU limit counts
