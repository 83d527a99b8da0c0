"""The CPUs this process may use: its CPU affinity, capped by a container's CPU limit.

`Settings` sizes the default workers and each worker's thread pools by `usable_cores()`; it is
read when a server starts and when a model loads, never per request.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["CGROUP_ROOT", "cgroup_cpu_limit", "usable_cores"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _quota(folder: Path) -> float | None:
    """The CPUs a cgroup's own bandwidth quota allows (1.5 = 150 ms a 100 ms period), or None."""
    try:
        if (folder / "cpu.max").exists():  # v2: "QUOTA PERIOD", or "max PERIOD"
            quota, period = (folder / "cpu.max").read_text().split()
        else:  # v1: a quota of -1 is none
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU limit of this process's cgroup and its ancestors (the tightest), or None.

    A container's CPU limit (`docker run --cpus`, Kubernetes `limits.cpu`) is such a quota,
    while the CPU affinity still lists every core of the node: sizing workers and thread pools
    by the affinity alone would start a pool per node core on a 2-CPU pod, and the quota would
    throttle them. Reads cgroup v2 (`cpu.max`, the unified hierarchy at `root`, or at
    `root/unified` beside v1 controllers) and v1 (`cpu.cfs_quota_us` under `root/cpu`).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)  # ID:CONTROLLERS:PATH
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        _, controllers, path = parts
        if controllers == "":  # v2
            mount = root if (root / "cgroup.controllers").exists() else root / "unified"
        elif "cpu" in controllers.split(","):  # v1: "cpu" is often a link to "cpu,cpuacct"
            mount = root / "cpu" if (root / "cpu").is_dir() else root / "cpu,cpuacct"
        else:
            continue
        # The group itself, then each parent up to the mount (a container without a cgroup
        # namespace sees the host's path, and its own group as the mount).
        group = Path(path)
        for level in (group, *group.parents):
            folder = mount / level.relative_to("/")
            limit = _quota(folder) if folder.is_dir() else None
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def usable_cores() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup CPU limit (rounded up)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()  # > 0 when set, so its ceiling is at least 1
    return cores if limit is None else min(cores, math.ceil(limit))
