"""What the prediction log costs at c=64: log on, log on with its shipper paused, log off.

    .venv/bin/python bench/log_cost.py [--rounds 3] [--duration 5]

The three variants run back to back, round after round (the machine is noisy: compare within
a round), each a fresh `tabserve serve` with its defaults on a free 127.0.0.1 port, warmed up
at c=1, then driven by wrk at c=64 with every response checked. "shipper paused" stops the
shipper process (SIGSTOP) for the point and resumes it before the server stops, so the rows
still reach the log: it shows what the serving workers cost without the shipper's CPU.
Prints one table: req/s, p50, p99, errors, and CPU microseconds per request of the workers
and of the shipper.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(_ROOT)

import psutil  # noqa: E402

from bench import stacks  # noqa: E402
from bench.load import LECTURE_QUERY, LoadResult, run_wrk  # noqa: E402
from bench.servers import cpu_seconds, is_shipper  # noqa: E402

VARIANTS = (
    ("log on", {}, False),
    ("log on, shipper paused", {}, True),
    ("log off", {"TABSERVE_PREDICTION_LOG": "false"}, False),
)


def _shippers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if is_shipper(p)]


def measure(
    tabserve: Path, home: Path, logs: Path, env: dict[str, str], pause: bool, duration: float
) -> tuple[LoadResult, float, float]:
    """One c=64 point: the load, then workers' and shipper's CPU microseconds per request."""
    with stacks.tabserve_server(tabserve, home, logs, env=env, label="tabserve-logcost") as srv:
        url = srv.url + LECTURE_QUERY
        run_wrk(url, 1, min(2.0, duration / 2))  # warm-up, unrecorded
        shippers = _shippers(srv.pid)
        workers = [p.pid for p in psutil.Process(srv.pid).children() if p not in shippers]
        shipper_pids = [p.pid for p in shippers]
        if pause:
            for p in shippers:
                p.suspend()
        try:
            before = cpu_seconds(workers + shipper_pids)
            load = run_wrk(url, 64, duration)
            after = cpu_seconds(workers + shipper_pids)
        finally:
            for p in shippers:
                p.resume()
        n = max(1.0, load.rps * duration)
        used = {pid: after.get(pid, 0.0) - before.get(pid, 0.0) for pid in after}
        worker_us = sum(used.get(p, 0.0) for p in workers) / n * 1e6
        shipper_us = sum(used.get(p, 0.0) for p in shipper_pids) / n * 1e6
        return load, worker_us, shipper_us


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--tabserve", type=Path, default=stacks.default_tabserve())
    args = parser.parse_args(argv)
    print(
        "| round | variant | req/s | p50 ms | p99 ms | errors | workers µs/req | shipper µs/req |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="tabserve-logcost-") as tmp:
        home, logs = Path(tmp) / "home", Path(tmp) / "logs"
        stacks.train_tabserve(args.tabserve, home, logs)
        for r in range(1, args.rounds + 1):
            for name, env, pause in VARIANTS:
                load, worker_us, shipper_us = measure(
                    args.tabserve, home, logs, env, pause, args.duration
                )
                print(
                    f"| {r} | {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} "
                    f"| {load.errors} | {worker_us:.1f} | {shipper_us:.1f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
