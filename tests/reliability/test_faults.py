"""Faults under load against the real server: a worker killed, SIGTERM, the log's Postgres
stopped for 20 s, a tampered artifact. Nothing hangs, nothing answered is lost.

Load is the suite's bounded keep-alive client (every request bounded by its timeout, so a hang
counts as a timeout and fails the test); figures are printed so a failure explains itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tabserve.artifacts.store import sha256_file
from tabserve.types import Manifest
from tests.reliability.held import Held, in_flight
from tests.reliability.support import LoadResult, load, pids
from tests.support.models import copy_home
from tests.support.net import wait_until
from tests.support.postgres import Cluster
from tests.support.server import Server

pytestmark = pytest.mark.slow

FLOWER = [7.7, 3.0, 6.1, 2.3]


def held_connections(worker: psutil.Process, port: int) -> int:
    """Client connections a worker holds on the server's port."""
    return sum(
        1
        for c in worker.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


def accept_queue(worker: psutil.Process, port: int) -> int:
    """Connections waiting in the worker's own listening socket (one per worker, SO_REUSEPORT).

    The kernel resets them when the worker dies, like the connections it held.
    """
    inodes = set()
    for fd in Path(f"/proc/{worker.pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), Path(table).open() as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                listening = fields[3] == "0A"
                if listening and local_port == port and fields[9] in inodes:
                    waiting += int(fields[4].split(":")[1], 16)  # rx_queue: the accept backlog
    return waiting


def in_background(**kwargs: object) -> tuple[threading.Thread, list[LoadResult], list[int]]:
    """`load(**kwargs)` in a thread; (thread, [result when done], [requests sent so far])."""
    results: list[LoadResult] = []
    progress = [0]

    def progressed(sent: int) -> None:
        progress[0] = sent

    thread = threading.Thread(
        target=lambda: results.append(load(on_progress=progressed, **kwargs))  # type: ignore[arg-type]
    )
    thread.start()
    return thread, results, progress


def sqlite_ids(home: Path) -> list[str]:
    """request_id of every live row in the embedded prediction log."""
    with sqlite3.connect(home / "predictions.db", timeout=30) as conn:
        rows = conn.execute("SELECT request_id FROM prediction_log WHERE role = 'live'")
        return [str(r[0]) for r in rows]


def postgres_ids(url: str) -> list[str]:
    """request_id of every live row in a Postgres prediction log (empty while it is down)."""
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            rows = conn.execute("SELECT request_id FROM prediction_log WHERE role = 'live'")
            return [str(r[0]) for r in rows]
    except psycopg.Error:
        return []


def test_kill_9_of_one_worker_under_load_fails_only_its_connections(
    trained: tuple[Manifest, Path, Path], targets: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    _, _, registry = trained
    server = Server(copy_home(registry, tmp_path / "home"), tmp_path / "serve.log").wait_ready()
    try:
        rss_before = server.worker_rss()
        before = pids(server.workers())
        thread, results, progress = in_background(
            port=server.port, targets=targets, requests=15_000, concurrency=24, seconds=60,
            timeout=30,
        )  # fmt: skip
        wait_until(lambda: progress[0] >= 1500, 60, "load under way")
        victim = server.workers()[0]
        held = held_connections(victim, server.port) + accept_queue(victim, server.port)
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)

        def replaced() -> bool:
            now = pids(server.workers())
            return len(now) == 2 and victim.pid not in now

        wait_until(replaced, 5, "a new worker within 5 s of the kill")
        spawned = time.monotonic() - killed_at
        thread.join(120)
        assert not thread.is_alive(), "the load did not end"
        (result,) = results
        wait_until(lambda: all(server.ready() for _ in range(10)), 60, "both workers ready")
        failures = result.transport_errors + sum(
            n for status, n in result.statuses.items() if status != 200
        )
        print(
            result.line("kill -9 under load"),
            f"victim_connections={held} failures={failures} failed_clients={len(result.failed_clients)}",
            f"new_worker_after={spawned:.2f}s",
            f"rss_before={rss_before >> 20}MiB rss_after={server.worker_rss() >> 20}MiB",
            f"workers {sorted(before)} -> {sorted(pids(server.workers()))}",
        )
        assert result.timeouts == 0  # nothing hung
        # Only the clients whose connection the killed worker held saw an error (a client may
        # see two: its reconnect can land on the dying worker's socket before the kernel has
        # closed it, which it does only after tearing down the process's memory).
        assert len(result.failed_clients) <= held
        assert failures <= 2 * held
        assert result.wrong == 0
        assert result.ok >= 1500
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    finally:
        server.stop()


def test_sigterm_under_load_completes_in_flight_requests_and_logs_every_row(
    trained: tuple[Manifest, Path, Path], targets: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    manifest, _, registry = trained
    server = Server(copy_home(registry, tmp_path / "home"), tmp_path / "serve.log").wait_ready()
    try:
        base = in_flight(server.url)
        # Four requests certainly in flight when SIGTERM arrives: their bodies are held back.
        held = [
            Held(server.port, f"/v1/models/{manifest.name}:predict", {"instances": [FLOWER]})
            for _ in range(4)
        ]
        wait_until(lambda: in_flight(server.url) >= base + 4, 30, "four requests in flight")
        thread, results, progress = in_background(
            port=server.port, targets=targets, requests=5000, concurrency=16, seconds=30,
            timeout=30,
        )  # fmt: skip
        wait_until(lambda: progress[0] >= 1000, 60, "load under way")
        rss = server.worker_rss()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the server is draining now
        answers = [h.finish() for h in held]
        for h in held:
            h.close()
        code = server.process.wait(60)
        thread.join(60)
        assert not thread.is_alive(), "the load did not end"
        (result,) = results
        held_ids = [headers["x-request-id"] for status, headers, _ in answers if status == 200]
        logged = sqlite_ids(server.home)
        print(
            result.line("load across SIGTERM"),
            f"held={[status for status, _, _ in answers]} exit={code} rss_before={rss >> 20}MiB",
            f"rows_logged={len(logged)} answered_200={result.ok + len(held_ids)}",
        )
        assert code == 0, server.output()[-3000:]
        assert len(held_ids) == 4, answers  # every in-flight request completed
        assert result.timeouts == 0 and result.wrong == 0
        # Past the drain the server closes connections; no request is answered with an error.
        assert set(result.statuses) == {200}, result.statuses
        assert len(logged) == len(set(logged))  # no row twice
        missing = {*result.ids, *held_ids} - set(logged)
        assert not missing, f"{len(missing)} answered requests have no logged row"
    finally:
        server.stop()


def test_the_logs_postgres_stopped_20_s_under_load_serving_unaffected_no_row_lost(
    trained: tuple[Manifest, Path, Path],
    targets: list[tuple[str, bytes]],
    tmp_path: Path,
    throwaway_postgres: Cluster,
) -> None:
    _, _, registry = trained
    url = throwaway_postgres.url()
    server = Server(
        copy_home(registry, tmp_path / "home"),
        tmp_path / "serve.log",
        env={"TABSERVE_PREDICTION_LOG_URL": url},
    ).wait_ready()
    try:
        paced = {"port": server.port, "targets": targets, "concurrency": 8, "rate": 100.0}
        before = load(requests=100_000, seconds=5, **paced)
        wait_until(lambda: len(postgres_ids(url)) >= before.ok, 30, "rows before the outage")

        def outage() -> None:
            throwaway_postgres.stop("immediate")
            time.sleep(20)
            throwaway_postgres.start()

        stopper = threading.Thread(target=outage)
        stopper.start()
        during = load(requests=100_000, seconds=20, **paced)
        after = load(requests=100_000, seconds=5, **paced)
        stopper.join(120)
        answered = [*before.ids, *during.ids, *after.ids]
        wait_until(lambda: len(postgres_ids(url)) >= len(answered), 120, "the spool drained")
        logged = postgres_ids(url)
        print(before.line("before"), during.line("Postgres down"), after.line("after"), sep="\n")
        print(f"answered={len(answered)} rows_logged={len(logged)}")
        for phase in (before, during, after):
            assert dict(phase.statuses) == {200: phase.sent}  # every request 200
            assert phase.transport_errors == 0 and phase.wrong == 0
        assert during.sent >= 500  # the outage really was under load
        assert sorted(logged) == sorted(answered)  # each answered request once, none lost
    finally:
        server.stop()


def test_a_tampered_artifact_is_never_served_and_the_log_names_both_hashes(
    trained: tuple[Manifest, Path, Path], tmp_path: Path
) -> None:
    manifest, artifact, registry = trained
    home = copy_home(registry, tmp_path / "home")
    model = home / artifact.relative_to(registry) / manifest.runtime.file
    expected = manifest.files[manifest.runtime.file]
    model.write_bytes(model.read_bytes() + b"x")
    actual = sha256_file(model)
    server = Server(home, tmp_path / "serve.log")
    process, log = server.process, server.log_path
    ready = 0
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                ready += httpx.get(f"{server.url}/v2/health/ready").is_success
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()
    output = log.read_text(errors="replace")
    print(f"exit={process.returncode} ready_answers={ready}\n{output[-2000:]}")
    assert process.returncode not in (0, None, -signal.SIGKILL)
    assert ready == 0
    (line,) = [line for line in output.splitlines() if actual in line]
    assert manifest.runtime.file in line and expected in line
