"""Start servers as subprocesses on free loopback ports, wait for them, measure, always stop.

Every server runs in its own process group so that stopping it reaches its workers too, and
`Server` is a context manager: whatever happens in the bench, the server is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

READY_TIMEOUT_S = 60.0  # a liveness bound: every server here is ready in a few seconds
STOP_TIMEOUT_S = 15.0


class ServerError(RuntimeError):
    """A bench server did not start, did not get ready, or died."""


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any TABSERVE_* setting, plus `extra`.

    The bench measures tabserve's defaults: a TABSERVE_WORKERS left in the shell must not
    change what is measured.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")}
    return {**base, **extra}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET to `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


@dataclass(frozen=True)
class Memory:
    """Memory of a server's process tree, in MiB."""

    rss_total: float
    pss_total: float
    pss_per_worker: list[float]  # every process but the root when it has children

    @property
    def pss_worker_max(self) -> float:
        """The largest serving worker's PSS (the root's when it serves alone)."""
        return max(self.pss_per_worker) if self.pss_per_worker else self.pss_total


def tree_memory(pid: int) -> Memory:
    """RSS and PSS summed over a process and its descendants, plus PSS per worker."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    rss = pss = 0.0
    workers: list[float] = []
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        proc_pss = float(getattr(info, "pss", info.rss))
        pss += proc_pss
        if proc.pid != pid:
            workers.append(proc_pss / 2**20)
    return Memory(rss / 2**20, pss / 2**20, workers)


def worker_pids(pid: int) -> list[int]:
    """The descendants of a server's root process (its workers), or the root alone."""
    children = psutil.Process(pid).children(recursive=True)
    return [c.pid for c in children] or [pid]


def is_shipper(proc: psutil.Process) -> bool:
    """Whether a process of a `tabserve serve` tree is its prediction-log shipper."""
    return "tabserve.monitoring.shipper" in " ".join(proc.cmdline())


def connections(pid: int, port: int) -> list[int]:
    """Established connections to `port` held by each process of a server's tree, most first.

    With SO_REUSEPORT (granian's workers) the kernel hashes each new connection to a worker, so
    wrk's keep-alive connections split unevenly, and the worker holding more of them answers
    each of its requests later: the p99 of a point follows that worker.
    """
    root = psutil.Process(pid)
    counts = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            held = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        n = sum(1 for c in held if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
        if n:
            counts.append(n)
    return sorted(counts, reverse=True)


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each process still alive."""
    out: dict[int, float] = {}
    for p in pids:
        try:
            t = psutil.Process(p).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[p] = t.user + t.system
    return out


class Server:
    """One server under test: started on entry, waited for, stopped on exit."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        ready_path: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.ready_path = ready_path
        # Ready when ready_path answers 200, or when `ready()` says so (a server without HTTP).
        self.ready = ready if ready is not None else self._http_ready
        self.env = clean_env(env or {})
        self.cwd = cwd
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.cold_start_s: float | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The root process id."""
        if self.proc is None:
            raise ServerError(f"{self.name} is not running")
        return self.proc.pid

    def _http_ready(self) -> bool:
        return http_status(self.url + self.ready_path, timeout=1.0) == 200

    def start(self) -> None:
        """Start the process and wait (bounded) until `ready_path` answers 200 (or `ready()`)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() reaches every worker
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, started: float) -> None:
        assert self.proc is not None  # noqa: S101 - set by start()
        deadline = started + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; "
                    f"see {self.log}:\n{self.tail()}"
                )
            if self.ready():
                self.cold_start_s = time.perf_counter() - started
                return
            time.sleep(0.01)
        raise ServerError(f"{self.name} not ready after {READY_TIMEOUT_S:.0f}s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left after a bounded wait."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        # workers that outlived their master still belong to the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def alive(self) -> bool:
        """True while the root process runs."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
