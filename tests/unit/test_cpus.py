"""The usable CPUs: a cgroup CPU quota, read from the files as each cgroup version lays them out."""

from __future__ import annotations

from pathlib import Path

from tabserve.cpus import cgroup_cpu_limit


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
