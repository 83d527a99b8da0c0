"""A real `tabserve serve` (gunicorn, 2 workers) for the monitoring tests, and ways to read it back.

Each server gets its own TABSERVE_HOME and a free loopback port; requests go through the
protocols users call, and the prediction log and `/metrics` are read the way an operator would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.test_server import LECTURE, NAMES, register_iris
from tests.support.net import free_port, wait_until

__all__ = ["LECTURE", "NAMES", "Served", "metric", "register_iris", "sqlite_rows"]

FLOWERS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]


class Served:
    """A running `tabserve serve iris --workers 2` with its own home, port and log file."""

    def __init__(
        self, home: Path, log: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tabserve", "serve", "iris", *args),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"),
                *("--graceful-timeout", "15"),
            ],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
                "TABSERVE_HOME": str(home),
                "TABSERVE_PREDICTION_LOG_FLUSH_MS": "20",
                **(env or {}),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        """True when a worker answers ready; raises if the server died."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"tabserve serve exited with {self.process.returncode}:\n{self.output()}"
            )
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self) -> Served:
        """Block until both workers answer ready (each loads its model after the fork)."""
        wait_until(lambda: all(self.ready() for _ in range(10)), 90, "both workers ready")
        return self

    def children(self) -> list[psutil.Process]:
        """The master's child processes (workers and the shipper)."""
        return psutil.Process(self.process.pid).children()

    def shippers(self) -> list[int]:
        """Pids of the prediction-log shipper processes under the master."""
        found = []
        for child in self.children():
            try:
                if "tabserve.monitoring.shipper" in " ".join(child.cmdline()):
                    found.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return found

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of `/metrics`, keyed by (name, sorted labels)."""
        text = self.client.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the master and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stop(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL past a minute) and close its log."""
        pids = []
        if self.process.poll() is None:
            pids = [c.pid for c in self.children()]
        code = self.terminate()
        self.client.close()
        self._log.close()
        for pid in pids:  # nothing the server started may outlive it
            try:
                psutil.Process(pid).wait(30)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
        return code


def metric(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def sqlite_rows(
    home: Path, query: str = "SELECT request_id, row, role FROM prediction_log"
) -> list[Any]:
    """Rows of the embedded prediction log (empty before the shipper created it)."""
    path = home / "predictions.db"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as conn:
        try:
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError:
            return []  # the table is created by the shipper's first connection


def mixed_requests(
    client: httpx.Client, count: int, served: dict[str, int] | None = None
) -> dict[str, int]:
    """`count` requests over every protocol (some with several rows); {request id: rows} of 200s.

    Each 200 is added to `served` as soon as it arrives, so a caller that sees the connection
    fail midway still knows every answered request.
    """
    served = {} if served is None else served
    for i in range(count):
        rows = FLOWERS[: 1 + i % len(FLOWERS)]
        kind = i % 4
        if kind == 0:
            response = client.get(LECTURE)
            rows = rows[:1]
        elif kind == 1:
            response = client.post("/v1/models/iris:predict", json={"instances": rows})
        elif kind == 2:
            data = [v for r in rows for v in r]
            response = client.post(
                "/v2/models/iris/infer",
                json={
                    "inputs": [
                        {"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": data}
                    ]
                },
            )
        else:
            response = client.post("/invocations", json={"instances": rows})
        if response.status_code == 200:
            served[response.headers["x-request-id"]] = len(rows)
    return served


def expected_keys(served: dict[str, int]) -> set[tuple[str, int, str]]:
    """(request id, row, role) of every served row."""
    return {(rid, row, "live") for rid, n in served.items() for row in range(n)}


def as_keys(rows: Iterable[Any]) -> list[tuple[str, int, str]]:
    """Log rows as (request id, row, role) tuples, duplicates kept."""
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]
