"""The bench harness: reading wrk's output (real captures) and rendering the results table."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench import grpc_load, stacks
from bench.load import EXPECTED_BODY, LoadResult, WrkError, parse_wrk_output, wrk_command
from bench.report import (
    CEILING,
    CEILING_GRPC,
    LECTURE,
    ONE_WORKER,
    SYNC_LOG,
    TABSERVE,
    TABSERVE_GRPC,
    Point,
    Results,
    bars,
    render,
)
from bench.rows import RowsResult
from bench.sched_delay import Waits, busiest_others, parse_latency
from bench.servers import Memory, connections

DATA = Path(__file__).resolve().parent.parent / "data" / "bench"


def wrk_output(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_parses_a_clean_run() -> None:
    result = parse_wrk_output(wrk_output("wrk-ok.txt"), concurrency=16)
    assert result.concurrency == 16
    assert result.requests == 19884
    assert result.duration_s == pytest.approx(1.009577)
    assert result.rps == pytest.approx(19884 / 1.009577)
    assert result.p50_ms == pytest.approx(0.692)
    assert result.p99_ms == pytest.approx(61.279)
    assert result.errors == 0


def test_every_wrong_body_is_an_error() -> None:
    result = parse_wrk_output(wrk_output("wrk-wrong-body.txt"), concurrency=4)
    assert result.mismatches == result.requests == 19334
    assert result.errors == 19334
    assert result.first_bad == '200 {"prediction":"2"}\n'


def test_non_2xx_counts_once() -> None:
    result = parse_wrk_output(wrk_output("wrk-404.txt"), concurrency=2)
    assert result.errors == result.requests == 1877
    assert result.first_bad.startswith("404 <!DOCTYPE HTML>")


def test_a_run_without_a_result_line_is_refused() -> None:
    with pytest.raises(WrkError, match="Connection refused"):
        parse_wrk_output(wrk_output("wrk-refused.txt"), concurrency=2)


def test_wrk_command_checks_the_lecture_body_with_one_thread() -> None:
    argv = wrk_command("http://127.0.0.1:1/", 64, 8)
    assert argv[1:4] == ["-t1", "-c64", "-d8s"]
    assert argv[-1] == EXPECTED_BODY == '{"prediction":"2"}\n'


def point(
    server: str,
    c: int,
    rps: float,
    p50_ms: float,
    p99_ms: float,
    pss: float,
    held: list[int] | None = None,
) -> Point:
    load = LoadResult(c, round(rps * 10), 10.0, p50_ms, p99_ms, mismatches=0, socket_errors=0)
    return Point(server, load, Memory(pss * 1.5, pss * 2, [pss, pss]), held)


def results(**extra: object) -> Results:
    r = Results(
        date="2026-11-24 10:00 UTC",
        machine={"cores": "2 (2 usable)", "CPU": "AMD EPYC"},
        versions={"python": "3.11.2", "wrk": "debian/4.1.0-3+b2 [epoll]"},
        duration_s=8,
    )
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_table_has_ratios_and_the_bar() -> None:
    r = results(
        points=[
            point(LECTURE, 1, 650, 1.3, 4.0, 125),
            point(LECTURE, 64, 1300, 50, 60, 125),
            point(CEILING, 1, 14000, 0.06, 0.2, 24),
            point(CEILING, 64, 50000, 1.2, 2.3, 24),
            point(TABSERVE, 1, 5000, 0.2, 0.5, 80),
            point(TABSERVE, 64, 26000, 2.4, 4.0, 80, held=[37, 27]),
            point(SYNC_LOG, 64, 13000, 4.8, 9.0, 80),
            point(ONE_WORKER, 64, 25000, 2.5, 3.6, 80),
            point(CEILING_GRPC, 64, 4000, 15, 30, 40),
            point(TABSERVE_GRPC, 64, 3000, 20, 60, 80),
        ],
        cold_start_s={TABSERVE: 1.2, LECTURE: 2.6},
        rows_server=RowsResult(10_000, 5, 0.01),
        rows_local=RowsResult(10_000, 5, 0.004),
        rows_label_mismatches=0,
    )
    text = render(r)
    assert (
        "| tabserve | 64 | 26,000 | 2.40 | 4.00 | 0 | 120 | 160 | 80, 80 | 37, 27 | 20.0x | 52% |"
        in text
    )
    assert "| lecture | 64 | 1,300 | 50.00 | 60.00 | 0 | 188 | 250 | 125, 125 | - |  |  |" in text
    # A tabserve variant is compared with the lecture stack and the HTTP ceiling, as tabserve.
    assert (
        "| tabserve, 1 worker | 64 | 25,000 | 2.50 | 3.60 | 0 | 120 | 160 | 80, 80 | - | 19.2x | 50% |"
        in text
    )
    # gRPC is compared with the gRPC ceiling, not the HTTP one, and never with the lecture.
    assert (
        "| tabserve gRPC | 64 | 3,000 | 20.00 | 60.00 | 0 | 120 | 160 | 80, 80 | - |  | 75% |"
        in text
    )
    assert (
        "| ceiling, grpc.aio | 64 | 4,000 | 15.00 | 30.00 | 0 | 60 | 80 | 40, 40 | - |  |  |"
        in text
    )
    assert "50% of the default's" in text
    assert "| c=64 req/s vs the lecture stack | >= 15x | 20.0x | pass |" in text
    assert "| 10,000-row V2 request vs the in-process runtime | >= 50% | 40% | FAIL |" in text
    assert "| cold start to /v2/health/ready | <= 2 s | 1.20 s | pass |" in text
    assert "- CPU: AMD EPYC" in text
    assert "- wrk: debian/4.1.0-3+b2 [epoll]" in text
    assert all(b.ok is not None for b in bars(r))


def test_a_stack_that_did_not_run_is_not_measured_and_noted() -> None:
    r = results(
        points=[point(LECTURE, 64, 1300, 50, 60, 125)],
        notes=["tabserve: ServerError: tabserve exited with 2 before it was ready"],
    )
    text = render(r)
    assert "| c=64 req/s vs the lecture stack | >= 15x | n/a | not measured |" in text
    assert "- tabserve: ServerError: tabserve exited with 2 before it was ready" in text
    assert {b.ok for b in bars(r)} == {None}


# A server that accepts connections and holds them open until its stdin closes.
_HOLDER = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
held = [server.accept()[0] for _ in range(int(sys.argv[1]))]
sys.stdin.read()
"""


def test_connections_counts_what_each_server_process_holds() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        deadline = time.monotonic() + 10
        while connections(holder.pid, port) != [3] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connections(holder.pid, port) == [3]
        assert connections(holder.pid, port + 1 if port < 65535 else port - 1) == []
    finally:
        for client in clients:
            client.close()
        holder.kill()
        holder.communicate()


def test_reads_each_threads_wake_up_delay_from_perf_sched() -> None:
    waits = parse_latency((DATA / "perf-sched-latency.txt").read_text(encoding="utf-8"))
    assert waits[25490] == Waits(167.861, 1374, 1.108, 6.667)
    assert waits[25471] == Waits(1508.243, 4821, 0.150, 7.160)
    assert len(waits) == 8  # one per thread line; the header and rules are not threads


def test_the_busiest_other_thread_is_named_by_its_cpu_in_the_trace() -> None:
    waits = parse_latency((DATA / "perf-sched-latency.txt").read_text(encoding="utf-8"))
    threads = {
        25471: "worker 1: event loop",
        25477: "worker 1: other thread",
        25484: "worker 1: other thread",
        25479: "worker 2: other thread",
        25490: "worker 2: other thread",
    }
    assert busiest_others(threads, waits) == {
        25471: "worker 1: event loop",
        25477: "worker 1: other thread",
        25484: "worker 1: busiest other thread",
        25479: "worker 2: other thread",
        25490: "worker 2: busiest other thread",
    }


def test_the_grpc_ceiling_answers_the_flower_as_tabserve_does(tmp_path: Path) -> None:
    # The gRPC rows' ceiling must pass the same check as tabserve's gRPC answers (class 2),
    # or its row would count every answer as an error.
    with stacks.grpc_ceiling(tmp_path) as server:
        target = f"127.0.0.1:{server.port}"
        assert grpc_load.server_ready(target)
        load = asyncio.run(grpc_load.run_point(target, 4, 0.5, max_requests=200))
    assert load.requests > 0
    assert (load.errors, load.first_bad) == (0, "")
    assert not grpc_load.server_ready(target, timeout_s=0.5)  # stopped with the block
