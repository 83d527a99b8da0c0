"""Thread limits per worker: workers x threads <= cores unless configured."""

from __future__ import annotations

import subprocess
import sys

from tabserve.runtime.threads import ENV_VARS, limit_env, limit_pools, worker_threads
from tabserve.settings import Settings


def test_worker_threads_share_the_cores() -> None:
    assert worker_threads(2, cores=2) == 1
    assert worker_threads(1, cores=8) == 8
    assert worker_threads(3, cores=8) == 2
    assert worker_threads(16, cores=2) == 1
    assert worker_threads(2, cores=2, configured=4) == 4


def test_settings_agree(monkeypatch: object) -> None:
    settings = Settings(workers=1, threads_per_worker=3)
    assert worker_threads(settings.workers, configured=settings.threads_per_worker) == 3
    assert Settings(workers=64).intra_op_threads() == 1


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
