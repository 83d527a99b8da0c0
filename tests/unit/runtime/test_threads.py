"""Thread limits per worker: workers x threads <= cores unless configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tabserve import settings
from tabserve.runtime.threads import ENV_VARS, limit_env, limit_pools
from tabserve.settings import Settings, cgroup_cpu_limit


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


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_cgroup_v2_quota_of_the_group_or_a_parent_the_tightest(tmp_path: Path) -> None:
    # The kernel's files as a pure v2 machine lays them out; the real cgroup test runs in
    # tests/integration/test_cpu_limit.py on whichever version the machine has.
    root = tmp_path / "cgroup"
    _tree(
        root,
        {
            "cgroup.controllers": "cpu memory\n",
            "kubepods/cpu.max": "400000 100000\n",
            "kubepods/pod1/cpu.max": "150000 100000\n",
            "kubepods/pod1/app/cpu.max": "max 100000\n",
        },
    )
    proc = tmp_path / "cgroup-of-self"
    proc.write_text("0::/kubepods/pod1/app\n")
    assert cgroup_cpu_limit(root, proc) == 1.5
    proc.write_text("0::/kubepods\n")
    assert cgroup_cpu_limit(root, proc) == 4.0
    (root / "kubepods/cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _tree(root, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    proc = tmp_path / "cgroup-of-self"
    # A container without a cgroup namespace sees the host's path and its own group as root.
    proc.write_text("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_limit(root, proc) is None
    (root / "cpu/cpu.cfs_quota_us").write_text("250000\n")
    assert cgroup_cpu_limit(root, proc) == 2.5
