"""A container's CPU limit is a cgroup quota: tabserve sizes its workers and thread pools by it.

The test makes a real cgroup with a CPU quota (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` where the
cpu controller is mounted as v1, as on these machines) and starts a fresh Python inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.root import as_root

from tabserve.cpus import CGROUP_ROOT, cgroup_cpu_limit, usable_cores

SCRIPT = (
    "from tabserve.cpus import cgroup_cpu_limit, usable_cores\n"
    "from tabserve.settings import Settings\n"
    "print(cgroup_cpu_limit(), usable_cores(), Settings().workers,"
    " Settings(workers=1).intra_op_threads())\n"
)


def _root_shell(command: str, *args: str) -> None:
    subprocess.run(
        [*as_root(prompt=False), "sh", "-c", command, "sh", *args], check=True, timeout=30
    )


@pytest.fixture
def limited_group() -> Iterator[tuple[Path, str]]:
    """An empty cgroup (path, cgroup version) that the test gives a quota; removed afterwards."""
    name = f"tabserve-test-{uuid.uuid4().hex[:8]}"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        group, version = CGROUP_ROOT / name, "v2"
        if "cpu" not in (CGROUP_ROOT / "cgroup.subtree_control").read_text().split():
            _root_shell('echo +cpu > "$1"', str(CGROUP_ROOT / "cgroup.subtree_control"))
    else:
        group, version = CGROUP_ROOT / "cpu" / name, "v1"
    _root_shell('mkdir "$1"', str(group))
    try:
        yield group, version
    finally:
        _root_shell('rmdir "$1"', str(group))


def _set_quota(group: Path, version: str, cpus: float) -> None:
    quota = str(int(cpus * 100_000))
    if version == "v2":
        _root_shell('echo "$2 100000" > "$1/cpu.max"', str(group), quota)
    else:
        _root_shell('echo 100000 > "$1/cpu.cfs_period_us"', str(group))
        _root_shell('echo "$2" > "$1/cpu.cfs_quota_us"', str(group), quota)


def _inside(group: Path | None) -> list[str]:
    """What a fresh Python in the group (or outside any new group) computes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")}
    if group is None:
        argv = [sys.executable, "-c", SCRIPT]
    else:
        # The shell joins the group, then becomes Python (the same process).
        argv = [
            *as_root(prompt=False),
            "env",
            *(f"{k}={v}" for k, v in env.items() if k in ("PATH", "PYTHONPATH", "HOME")),
            "sh",
            "-c",
            'echo $$ > "$1/cgroup.procs" && exec "$2" -c "$3"',
            "sh",
            str(group),
            sys.executable,
            SCRIPT,
        ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_workers_and_threads_follow_a_cgroup_cpu_quota(limited_group: tuple[Path, str]) -> None:
    group, version = limited_group
    cores = len(os.sched_getaffinity(0))
    assert cores >= 2, "this test needs a machine with at least 2 cores"
    # Outside the new group, as this process sees it (None on a machine without a CPU limit).
    here = usable_cores()
    assert _inside(None) == [str(cgroup_cpu_limit()), str(here), str(here), str(here)]

    _set_quota(group, version, 1.0)
    assert _inside(group) == ["1.0", "1", "1", "1"]

    # Half a CPU still runs one worker with one thread.
    _set_quota(group, version, 0.5)
    assert _inside(group) == ["0.5", "1", "1", "1"]

    # A quota above the cores changes nothing.
    _set_quota(group, version, cores + 2.0)
    assert _inside(group) == [str(float(cores + 2)), str(cores), str(cores), str(cores)]
