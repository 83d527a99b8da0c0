"""Thread limits per worker: workers x threads <= cores unless configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tabserve import settings
from tabserve.runtime.threads import ENV_VARS, limit_env, limit_pools
from tabserve.settings import Settings


def test_worker_threads_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for workers, cores, threads in ((2, 2, 1), (1, 8, 8), (3, 8, 2), (16, 2, 1)):
        monkeypatch.setattr(settings, "usable_cores", lambda cores=cores: cores)
        assert Settings(workers=workers).intra_op_threads() == threads
    assert Settings(workers=2, threads_per_worker=4).intra_op_threads() == 4


def test_limit_env_sets_every_library_variable() -> None:
    env: dict[str, str] = {}
    limit_env(2, env)
    assert {name: env[name] for name in ENV_VARS} == dict.fromkeys(ENV_VARS, "2")


def test_limit_pools_caps_blas_in_a_fresh_process() -> None:
    script = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from tabserve.runtime.threads import limit_pools\n"
        "limit_pools(1)\n"
        "print(max([p['num_threads'] for p in threadpool_info()] or [1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert limit_pools(1) is not None
