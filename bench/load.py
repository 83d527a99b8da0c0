"""Drive a server with wrk and read back what the check script measured.

wrk runs with 1 thread and keep-alive connections; `bench/wrk/check.lua` checks every
response (status 200 and the exact expected body) and prints one `BENCH_JSON {...}` line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHECK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "check.lua"
LECTURE_QUERY = "/?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
EXPECTED_BODY = '{"prediction":"2"}\n'
_MARK = "BENCH_JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


@dataclass(frozen=True)
class LoadResult:
    """One load point: throughput, latency and every kind of error wrk saw."""

    concurrency: int
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mismatches: int  # non-200 status or a body other than the expected one
    socket_errors: int  # connect + read + write + timeout
    first_bad: str = ""

    @property
    def rps(self) -> float:
        """Requests per second over the point."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Every request that did not get the right answer."""
        return self.mismatches + self.socket_errors


def parse_wrk_output(stdout: str, concurrency: int) -> LoadResult:
    """Read the check script's `BENCH_JSON` line out of wrk's stdout."""
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK) :])
            break
    else:
        raise WrkError(f"wrk printed no {_MARK.strip()} line; its output was:\n{stdout}")
    return LoadResult(
        concurrency=concurrency,
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        mismatches=int(data["mismatches"]),
        socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        first_bad=str(data.get("first_bad", "")),
    )


def wrk_command(url: str, concurrency: int, duration_s: float) -> list[str]:
    """The wrk command line for one point: 1 thread, `concurrency` keep-alive connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError(
            "wrk is not installed: `apt-get install wrk` (tests/setup-system.sh does it)"
        )
    return [
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "5s",
        "-s",
        str(CHECK_SCRIPT),
        url,
        "--",
        EXPECTED_BODY,
    ]


def start_wrk(url: str, concurrency: int, duration_s: float) -> subprocess.Popen[str]:
    """Start one wrk point in the background (so the server can be sampled meanwhile)."""
    return subprocess.Popen(
        wrk_command(url, concurrency, duration_s),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_wrk(proc: subprocess.Popen[str], concurrency: int, duration_s: float) -> LoadResult:
    """Wait (bounded) for a wrk started by start_wrk and parse its result."""
    try:
        stdout, _ = proc.communicate(timeout=duration_s + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise WrkError(f"wrk did not finish within {duration_s + 30:.0f}s") from None
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}:\n{stdout}")
    return parse_wrk_output(stdout, concurrency)


def run_wrk(url: str, concurrency: int, duration_s: float) -> LoadResult:
    """One bounded load point against `url`."""
    return finish_wrk(start_wrk(url, concurrency, duration_s), concurrency, duration_s)
