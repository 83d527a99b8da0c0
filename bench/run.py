"""`make bench`: tabserve against the lecture's stack and the raw ASGI ceiling, in one run.

    .venv/bin/python bench/run.py [--duration 8 | --quick] [--profile] [--servers ...]

Starts each server on a free 127.0.0.1 port, drives it with wrk at concurrency 1, 16 and 64,
checks every response, measures memory, cold start and a 10,000-row V2 request, and writes the
table (with issue 4's bar, pass/fail) to bench/RESULTS.md. Informational: exit 0 unless the
harness itself breaks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

# Run as a script (`python bench/run.py`): import the bench as the package it is.
_ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(_ROOT)

import psutil  # noqa: E402

from bench import grpc_load, pyspy, rows, stacks  # noqa: E402
from bench.load import LECTURE_QUERY, LoadResult, finish_wrk, run_wrk, start_wrk  # noqa: E402
from bench.report import (  # noqa: E402
    CEILING,
    CEILING_GRANIAN,
    CEILING_GRPC,
    LECTURE,
    NO_LOG,
    ONE_WORKER,
    SYNC_LOG,
    TABSERVE,
    TABSERVE_GRPC,
    Point,
    Results,
    render,
)
from bench.servers import (  # noqa: E402
    Server,
    connections,
    cpu_seconds,
    free_port,
    tree_memory,
    worker_pids,
)

CONCURRENCY = (1, 16, 64)
OUT_DIR = _ROOT / "bench" / "out"
PACKAGES = (
    "tabserve",
    "scikit-learn",
    "numpy",
    "onnxruntime",
    "skl2onnx",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "gunicorn",
    "granian",
    "msgspec",
    "flask",
    "werkzeug",
    "py-spy",
)


def machine() -> dict[str, str]:
    """Cores, CPU model, kernel and memory of this machine."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "CPU": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
    }


def versions() -> dict[str, str]:
    """Python, wrk and the packages on the measured paths."""
    out = {"python": platform.python_version()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        out["wrk"] = (wrk.stdout or wrk.stderr).split("Copyright")[0].strip().removeprefix("wrk ")
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def warmup_s(duration: float) -> float:
    """The unrecorded warm-up before a server's first point."""
    return min(2.0, duration / 2)


def print_point(label: str, load: LoadResult) -> None:
    """One progress line per point."""
    print(
        f"  {label:<20} c={load.concurrency:<3} {load.rps:>10,.0f} req/s  "
        f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms  errors {load.errors}",
        flush=True,
    )


def drive(
    results: Results, label: str, server: Server, duration: float, levels: tuple[int, ...]
) -> None:
    """Warm the server up, then run each concurrency point, recording load and memory."""
    url = server.url + LECTURE_QUERY
    # Every server gets the same unrecorded warm-up, so that no point measures first-request
    # work (imports on first use, the prediction log creating its database, cold caches).
    run_wrk(url, min(levels), warmup_s(duration))
    for c in levels:
        proc = start_wrk(url, c, duration)
        time.sleep(min(1.0, duration / 2))  # wrk has opened its connections by then
        held = connections(server.pid, server.port) if server.alive() else None
        load = finish_wrk(proc, c, duration)
        if not server.alive():
            results.notes.append(f"{label} died during the c={c} point; see {server.log}")
            return
        results.points.append(Point(label, load, tree_memory(server.pid), held))
        print_point(label, load)
        if load.errors and load.first_bad:
            results.notes.append(f"{label} c={c}: first wrong answer: {load.first_bad!r}")


def profile_point(results: Results, server: Server, c: int, duration: float, out: Path) -> None:
    """An extra point, outside the table (sampling slows the worker), with py-spy on the busiest."""
    proc = start_wrk(server.url + LECTURE_QUERY, c, duration)
    pids = worker_pids(server.pid)
    before = cpu_seconds(pids)
    time.sleep(min(0.5, duration / 4))
    after = cpu_seconds(pids)
    busiest = max(after, key=lambda p: after[p] - before.get(p, 0.0))
    seconds = max(1, int(duration - 1.5))
    try:
        recorder = pyspy.start_record(busiest, seconds, out)
        pyspy.finish_record(recorder, seconds, out)
        results.profile = str(out.relative_to(_ROOT))
        results.profile_top = pyspy.top_frames(out)
    except pyspy.ProfileError as error:
        results.notes.append(f"profile: {error}")
    load = finish_wrk(proc, c, duration)
    results.notes.append(
        f"profiled c={c} point (not in the table): {load.rps:,.0f} req/s while py-spy sampled pid {busiest}"
    )


def bench_lecture(results: Results, work: Path, logs: Path, duration: float) -> None:
    """The lecture's Flask app on gunicorn -w 3."""
    model = stacks.build_lecture_model(work)
    with stacks.lecture(model, logs) as server:
        results.cold_start_s[LECTURE] = server.cold_start_s or 0.0
        drive(results, LECTURE, server, duration, CONCURRENCY)


def bench_ceiling(results: Results, logs: Path, duration: float) -> None:
    """The constant-answer raw ASGI app on uvicorn, 1 worker; then on granian, for reference;
    then the constant-answer gRPC servicer, the gRPC rows' ceiling."""
    with stacks.ceiling(logs) as server:
        results.cold_start_s[CEILING] = server.cold_start_s or 0.0
        drive(results, CEILING, server, duration, CONCURRENCY)
    with stacks.ceiling_granian(logs) as server:
        drive(results, CEILING_GRANIAN, server, duration, CONCURRENCY)
    with stacks.grpc_ceiling(logs) as server:
        drive_grpc(results, CEILING_GRPC, server, server.port, duration)


def drive_grpc(
    results: Results, label: str, server: Server, grpc_port: int, duration: float
) -> None:
    """The gRPC points (grpc_load.py); a failure is noted, the other rows still count."""
    try:
        for load in grpc_load.run(f"127.0.0.1:{grpc_port}", duration):
            results.points.append(Point(label, load, tree_memory(server.pid)))
            print_point(label, load)
    except Exception as error:
        results.notes.append(f"{label}: {type(error).__name__}: {error}")


def bench_tabserve(
    results: Results, tabserve: Path, work: Path, logs: Path, duration: float, profile: bool
) -> None:
    """tabserve as the README runs it, then the large request, then the log's variants."""
    home = work / "tabserve-home"
    stacks.train_tabserve(tabserve, home, logs)
    data = rows.make_rows()
    server_labels: list[object] | None = None
    profile_to = OUT_DIR / f"tabserve-c64-{dt.datetime.now():%Y%m%d-%H%M%S}.speedscope.json"
    grpc_port = free_port()
    with stacks.tabserve_server(tabserve, home, logs, grpc_port=grpc_port) as server:
        results.cold_start_s[TABSERVE] = server.cold_start_s or 0.0
        drive(results, TABSERVE, server, duration, CONCURRENCY)
        drive_grpc(results, TABSERVE_GRPC, server, grpc_port, duration)
        if profile:
            profile_point(results, server, max(CONCURRENCY), duration, profile_to)
        try:
            results.rows_server, server_labels = rows.bench_v2(server.url, data, min(duration, 3))
        except (rows.RowsError, OSError, ValueError) as error:
            results.notes.append(f"10,000-row V2 request: {error}")
    # The in-process runtime runs with no server competing for the cores.
    try:
        folder, manifest = rows.find_artifact(home)
        info = manifest.runtime
        results.runtime = f"{info.kind}" + (f" (fallback: {info.reason})" if info.reason else "")
        if info.parity:
            results.runtime += f", parity {info.parity}"
        runtime = rows.load_runtime(folder, manifest)
        results.rows_local, local_labels = rows.bench_in_process(runtime, data, min(duration, 3))
        if server_labels is not None:
            results.rows_label_mismatches = rows.label_mismatches(server_labels, local_labels)
    except Exception as error:
        results.notes.append(f"in-process runtime: {type(error).__name__}: {error}")
    variants = (
        (SYNC_LOG, "tabserve-sync", {"TABSERVE_PREDICTION_LOG_SYNC": "true"}, (64,)),
        (NO_LOG, "tabserve-nolog", {"TABSERVE_PREDICTION_LOG": "false"}, (64,)),
        (ONE_WORKER, "tabserve-1worker", {"TABSERVE_WORKERS": "1"}, (16, 64)),
    )
    for name, label, env, concurrency in variants:
        with stacks.tabserve_server(tabserve, home, logs, env=env, label=label) as server:
            drive(results, name, server, duration, concurrency)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run every stack (each failure noted, not fatal), write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per point (default 8)")
    parser.add_argument("--quick", action="store_true", help="2 s points, for a short check")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy one tabserve worker during c=64, save under bench/out/",
    )
    parser.add_argument(
        "--servers",
        default=f"{LECTURE},{CEILING},{TABSERVE}",
        help="comma-separated subset of lecture,ceiling,tabserve",
    )
    parser.add_argument(
        "--tabserve",
        type=Path,
        default=stacks.default_tabserve(),
        help="the tabserve executable (default: the venv's)",
    )
    parser.add_argument("--output", type=Path, default=_ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    chosen = {s.strip() for s in args.servers.split(",") if s.strip()}

    results = Results(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        versions=versions(),
        duration_s=duration,
    )
    logs = OUT_DIR / "logs"
    with tempfile.TemporaryDirectory(prefix="tabserve-bench-") as tmp:
        work = Path(tmp)
        steps: list[tuple[str, Callable[[], None]]] = [
            (LECTURE, lambda: bench_lecture(results, work, logs, duration)),
            (CEILING, lambda: bench_ceiling(results, logs, duration)),
            (
                TABSERVE,
                lambda: bench_tabserve(results, args.tabserve, work, logs, duration, args.profile),
            ),
        ]
        for name, step in steps:
            if name not in chosen:
                continue
            print(f"{name}:", flush=True)
            try:
                step()
            except Exception as error:
                results.notes.append(f"{name}: {type(error).__name__}: {error}")
                print(f"  {name} failed: {error}", flush=True)
    report = render(results)
    args.output.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
