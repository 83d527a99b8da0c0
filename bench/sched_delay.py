"""Where a c=64 request waits for a CPU: each thread's run time and wake-up delay, with perf sched.

    .venv/bin/python bench/sched_delay.py [--duration 8] [--trace 3]

Trains the default model into a temp TABSERVE_HOME, starts `tabserve serve` with its defaults
on a free 127.0.0.1 port, warms it up, drives it with wrk at c=64 (every response checked) and,
from one second in, records the scheduler's events for `--trace` seconds (`perf sched record`,
Debian package linux-perf; run as root). Prints one line per busy thread: its role, CPU time,
how often it was woken, and how long it then waited for a CPU (`perf sched latency`: average
and worst). Roles: each worker's event loop (its main thread), granian's tokio I/O threads,
the worker's busiest other thread by CPU in the trace (granian's native thread that takes the GIL to hand each
request to the loop; py-spy dump shows it with no Python frames), the shipper and wrk.

On the 2-core machine a request crosses three threads of a worker (tokio, the GIL-taking
thread, the loop), each woken in turn, while wrk and the shipper share the same cores.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

_ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(_ROOT)

import psutil  # noqa: E402

from bench import stacks  # noqa: E402
from bench.load import LECTURE_QUERY, finish_wrk, run_wrk, start_wrk  # noqa: E402
from bench.servers import is_shipper  # noqa: E402

OTHER = "other thread"
BUSIEST = "busiest other thread"  # granian's GIL-taking thread
# `perf sched latency -p` lines: "  comm:tid | runtime ms | switches | avg: x ms | max: y ms | ..."
_LINE = re.compile(
    r"^\s*(?P<comm>.+?):(?P<tid>\d+)\s*\|\s*(?P<run>[\d.]+) ms\s*\|\s*(?P<switches>\d+)\s*\|"
    r"\s*avg:\s*(?P<avg>[\d.]+) ms\s*\|\s*max:\s*(?P<max>[\d.]+) ms"
)


class Waits(NamedTuple):
    """One thread's line of `perf sched latency -p`."""

    cpu_ms: float
    woken: int
    avg_ms: float
    worst_ms: float


def parse_latency(report: str) -> dict[int, Waits]:
    """Thread id -> its figures, from the text of `perf sched latency -p`."""
    out = {}
    for line in report.splitlines():
        m = _LINE.match(line)
        if m:
            out[int(m["tid"])] = Waits(
                float(m["run"]), int(m["switches"]), float(m["avg"]), float(m["max"])
            )
    return out


def busiest_others(threads: dict[int, str], waits: dict[int, Waits]) -> dict[int, str]:
    """The roles with each worker's busiest other thread, by CPU in the trace, named as such."""
    busiest: dict[str, int] = {}
    for tid, role in threads.items():
        if role.endswith(OTHER) and tid in waits:
            best = busiest.get(role)
            if best is None or waits[tid].cpu_ms > waits[best].cpu_ms:
                busiest[role] = tid
    return {
        tid: role.replace(OTHER, BUSIEST) if busiest.get(role) == tid else role
        for tid, role in threads.items()
    }


def roles(server_pid: int, wrk_pid: int) -> dict[int, str]:
    """Thread id -> role, for the server's threads and wrk's (see busiest_others)."""
    out: dict[int, str] = {}
    n = 0
    for proc in psutil.Process(server_pid).children():
        if is_shipper(proc):
            for t in proc.threads():
                out[t.id] = "shipper"
            continue
        n += 1
        for t in proc.threads():
            comm = Path(f"/proc/{proc.pid}/task/{t.id}/comm").read_text().strip()
            if t.id == proc.pid:
                out[t.id] = f"worker {n}: event loop"
            elif comm == "tokio-rt-worker":
                out[t.id] = f"worker {n}: granian tokio I/O"
            else:
                out[t.id] = f"worker {n}: {OTHER}"
    for t in psutil.Process(wrk_pid).threads():
        out[t.id] = "wrk"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load")
    parser.add_argument("--trace", type=float, default=3.0, help="seconds traced, from 1 s in")
    parser.add_argument("--tabserve", type=Path, default=stacks.default_tabserve())
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed: `apt-get install linux-perf`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tabserve-sched-") as tmp:
        home, logs, data = Path(tmp) / "home", Path(tmp) / "logs", Path(tmp) / "sched.data"
        stacks.train_tabserve(args.tabserve, home, logs)
        with stacks.tabserve_server(args.tabserve, home, logs, label="tabserve-sched") as srv:
            url = srv.url + LECTURE_QUERY
            run_wrk(url, 64, 2.0)  # warm-up, unrecorded
            wrk = start_wrk(url, 64, args.duration)
            time.sleep(1.0)
            threads = roles(srv.pid, wrk.pid)
            subprocess.run(
                ["perf", "sched", "record", "-o", str(data), "--", "sleep", str(args.trace)],
                check=True,
                capture_output=True,
                timeout=args.trace + 60,
            )
            load = finish_wrk(wrk, 64, args.duration)
        report = subprocess.run(
            ["perf", "sched", "latency", "-p", "-i", str(data)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    waits = parse_latency(report)
    threads = busiest_others(threads, waits)
    rows = sorted((threads[tid], w) for tid, w in waits.items() if tid in threads)
    print(
        f"c=64: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
        f"errors {load.errors}; {args.trace:.0f} s traced on {psutil.cpu_count()} cores"
    )
    print("| thread | CPU ms | woken | wait for a CPU, avg ms | worst ms |")
    print("|---|---:|---:|---:|---:|")
    for role, w in rows:
        if w.cpu_ms >= 1.0:
            print(f"| {role} | {w.cpu_ms:,.0f} | {w.woken} | {w.avg_ms:.3f} | {w.worst_ms:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
