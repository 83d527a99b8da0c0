"""A real `tabserve serve` for tests, started as users run it, and ways to read it back.

Each server is `python -m tabserve serve ...` in a subprocess: 2 workers (granian's master,
its worker processes, the prediction-log shipper) on a free 127.0.0.1 port, its own TABSERVE_HOME and
no TABSERVE_* from the test's environment unless given. It is stopped with SIGTERM and a
bounded wait, killed past it, and nothing it started outlives it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import promote, register_iris
from tests.support.net import free_port, wait_until

__all__ = ["LECTURE", "Samples", "Server", "metric", "serve_promoted", "sqlite_rows"]

LECTURE = "/?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"

# Shutdown is bounded well inside stop()'s wait, and logged rows reach the log within tens of
# milliseconds, so a test that reads the log back does not wait on the flush interval.
DEFAULTS = {"TABSERVE_GRACEFUL_TIMEOUT": "15", "TABSERVE_PREDICTION_LOG_FLUSH_MS": "20"}
# Each worker's line once its lifespan (model load and self-test) is done: a worker accepts
# connections only after it, so probes alone cannot tell that every worker is ready.
STARTED = "worker ready"  # in JSON and in console format

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Server:
    """A running `tabserve serve ARGS` with its own home, port and log file.

    `workers=None` leaves the worker count to the server (`--dev` runs one in-process server);
    `token` is sent with the readiness probes of a server whose health routes need one.
    """

    def __init__(
        self,
        home: Path,
        log: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        workers: int | None = 2,
        token: str | None = None,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.expected_workers = workers or 1
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self._log = log.open("wb")
        command = [*(sys.executable, "-m", "tabserve", "serve", *args)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        if workers is not None:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(
            command,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
                **DEFAULTS,
                "TABSERVE_HOME": str(home),
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
        """True when a worker answers ready; raises if the server exited."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"tabserve serve exited with {self.process.returncode}:\n{self.output()}"
            )
        try:
            answer = httpx.get(f"{self.url}/v2/health/ready", headers=self._headers, timeout=2)
        except httpx.TransportError:
            return False
        return answer.status_code == 200

    def wait_ready(self, timeout: float = 120) -> Server:
        """Block until every worker finished its startup and the server answers ready."""

        def all_started() -> bool:
            return self.ready() and self.output().count(STARTED) >= self.expected_workers

        wait_until(all_started, timeout, "every worker of tabserve serve ready", interval=0.1)
        wait_until(lambda: all(self.ready() for _ in range(10)), timeout, "ready on every probe")
        return self

    def children(self) -> list[psutil.Process]:
        """The master's child processes: its workers and the prediction-log shipper."""
        try:
            return list(psutil.Process(self.process.pid).children())
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        """The worker processes (the master's children but the shipper)."""
        return [c for c in self.children() if _is_shipper(c) is False]

    def shippers(self) -> list[psutil.Process]:
        """The prediction-log shipper processes under the master."""
        return [c for c in self.children() if _is_shipper(c) is True]

    def worker_pids(self) -> list[int]:
        """Pids of the workers."""
        return [w.pid for w in self.workers()]

    def shipper_pids(self) -> list[int]:
        """Pids of the prediction-log shippers."""
        return [s.pid for s in self.shippers()]

    def worker_rss(self) -> int:
        """Resident memory of all workers, bytes."""
        return sum(w.memory_info().rss for w in self.workers())

    def worker_fds(self) -> tuple[int, int]:
        """Open fds of all workers: (sockets, everything else)."""
        sockets = others = 0
        for worker in self.workers():
            for fd in Path(f"/proc/{worker.pid}/fd").iterdir():
                try:
                    target = str(fd.readlink())
                except OSError:
                    continue
                if target.startswith("socket:"):
                    sockets += 1
                else:
                    others += 1
        return sockets, others

    def metrics(self) -> Samples:
        """Every sample of `/metrics`, keyed by (name, sorted labels)."""
        text = self.client.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the master and wait at most `timeout` s (then SIGKILL); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stop(self, timeout: float = 60) -> int:
        """Stop the server whatever state it is in, close its client and log; its exit code."""
        children = self.children() if self.process.poll() is None else []
        code = self.terminate(timeout)
        self.client.close()
        self._log.close()
        for child in children:  # nothing the server started may outlive it
            try:
                child.wait(30)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                child.kill()
        return code


@contextmanager
def serve_promoted(
    tmp: Path, versions: int, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """`tabserve serve iris ARGS` (2 workers) with iris:1..versions registered, iris:1 promoted."""
    home = tmp / "home"
    for _ in range(versions):
        register_iris(home)
    promote(home, "iris:1")
    served = Server(home, tmp / "serve.log", "iris", *args, env=env)
    try:
        yield served.wait_ready()
    finally:
        served.stop()


def _is_shipper(process: psutil.Process) -> bool | None:
    """Whether a child is the shipper; None once it is gone."""
    try:
        return "tabserve.monitoring.shipper" in " ".join(process.cmdline())
    except psutil.Error:
        return None


def metric(samples: Samples, name: str, **labels: str) -> float:
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
