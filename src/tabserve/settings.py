"""The one settings object: every option also reads from a `TABSERVE_*` environment variable."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """tabserve's configuration; CLI flags override these, which override the defaults."""

    model_config = SettingsConfigDict(env_prefix="TABSERVE_", extra="ignore")

    # registry
    home: Path = Path(".tabserve")
    registry_url: SecretStr | None = None  # postgresql://... keeps index and files in Postgres
    db_password: SecretStr | None = None
    db_password_file: Path | None = None
    allow_version_mismatch: bool = False  # load artifacts trained with another scikit-learn

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int | None = Field(None, ge=0, le=65535)  # OIP gRPC service; off unless set
    workers: int = Field(default_factory=usable_cores, ge=1)
    request_timeout: float = Field(30.0, gt=0)
    graceful_timeout: float = Field(30.0, gt=0)
    default_model: str | None = None
    models: list[str] = []  # NAME, NAME:VERSION or NAME@ALIAS; empty = every model
    max_batch_rows: int = Field(10_000, ge=1)  # largest request accepted
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    batch_max_rows: int = Field(64, ge=1)  # adaptive batching cut
    batch_max_wait_ms: float = Field(2.0, ge=0)
    threads_per_worker: int | None = None  # intra-op threads; default cores // workers
    max_in_flight: int = Field(1024, ge=1)  # per worker; past it 503 + Retry-After
    registry_poll: float = Field(2.0, gt=0)
    shadow: list[str] = []  # candidate versions sent a copy of each live request

    # logs and monitoring
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = False
    prediction_log: bool = True
    prediction_log_url: SecretStr | None = None  # postgresql://...; default SQLite in home
    prediction_log_retention_days: int = Field(30, ge=1)
    prediction_log_hash_features: bool = False
    prediction_log_sync: bool = False
    prediction_log_flush_ms: float = Field(50.0, gt=0)
    prediction_log_spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024)
    on_log_full: Literal["refuse", "drop"] = "refuse"

    # security
    api_tokens: SecretStr | None = None  # comma-separated bearer tokens
    api_tokens_file: Path | None = None
    open_health: bool = True
    open_metrics: bool = True
    admin_token: SecretStr | None = None

    @field_validator("models", "shadow", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m for m in value.replace(",", " ").split() if m]
        return value

    def database_password(self) -> str | None:
        """The database password from TABSERVE_DB_PASSWORD or the file TABSERVE_DB_PASSWORD_FILE."""
        if self.db_password is not None:
            return self.db_password.get_secret_value()
        if self.db_password_file is not None:
            return self.db_password_file.read_text(encoding="utf-8").strip()
        return None

    def intra_op_threads(self) -> int:
        """Threads each worker's runtime may use, so that workers x threads <= usable cores."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, usable_cores() // self.workers)
