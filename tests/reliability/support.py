"""The reliability suite's tools: a second model, nginx in front of the server, a load client.

Everything listens on 127.0.0.1 on free ports. The server is `tests.support.server.Server`
(`tabserve serve` as users run it); nginx runs the config `tabserve deploy` renders, only with
the compose hostnames mapped to loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tabserve.deploy.render import DeployOptions, _environment, values
from tabserve.serving.inference import load_runtime
from tabserve.settings import Settings
from tabserve.types import Manifest
from tests.support.models import NAMES, publish
from tests.support.net import free_port, wait_until


def register_mixed(home: Path) -> Manifest:
    """A classifier on a number that may be missing and a category, published to home's registry."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {"age": rng.uniform(18, 80, 200), "city": rng.choice(["paris", "lyon", "nice"], 200)}
    )
    X["city"] = X["city"].astype(object)
    X.loc[::10, "age"] = np.nan
    y = np.where(X["city"] == "paris", "yes", "no")
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["age"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(X, y)
    return publish(home, pipeline, X, name="mixed", classes=["no", "yes"], source="test")


def lecture_targets(manifest: Manifest, artifact: Path) -> list[tuple[str, bytes]]:
    """150 lecture GETs (one per Iris row) with the exact body the model must answer."""
    X, _ = load_iris(return_X_y=True)
    runtime = load_runtime(artifact, manifest, threads=1, settings=Settings())
    labels = runtime.predict(X.astype(np.float64)).labels
    targets = []
    for row, label in zip(X, labels, strict=True):
        query = "&".join(f"{n}={v!r}" for n, v in zip(NAMES, row.tolist(), strict=True))
        targets.append((f"/?{query}", f'{{"prediction":"{label}"}}\n'.encode()))
    return targets


def logged_rows(home: Path, role: str = "live") -> tuple[int, int]:
    """Rows in the embedded (SQLite) prediction log, and distinct request ids."""
    path = home / "predictions.db"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM prediction_log WHERE role = ?",
            (role,),
        ).fetchone()
    return int(row[0]), int(row[1])


@dataclass
class Nginx:
    """nginx running the config `tabserve deploy` renders, in front of one server."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown), then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(
    manifest: Manifest, upstream_port: int, folder: Path, options: DeployOptions
) -> Nginx:
    """Render nginx.conf as `tabserve deploy` does and run it on a free loopback port."""
    conf = _environment().get_template("nginx.conf.j2").render(values(manifest, options, "x.whl"))
    port = free_port()
    conf = conf.replace(f"server api:{options.port};", f"server 127.0.0.1:{upstream_port};")
    conf = conf.replace(f"listen {options.listen_port};", f"listen 127.0.0.1:{port};")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nginx.conf").write_text(conf)
    log = folder / "nginx.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [shutil.which("nginx") or "/usr/sbin/nginx", "-p", f"{folder}/",
             "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    nginx = Nginx(process, f"http://127.0.0.1:{port}", port, log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            return httpx.get(f"{nginx.url}/v2/health/live", timeout=2).is_success
        except httpx.TransportError:
            return False

    wait_until(up, 30, "nginx in front of the API")
    return nginx


# -- a lean HTTP/1.1 keep-alive load client ---------------------------------------------------
# httpx would spend the client's share of 2 cores on itself; raw asyncio streams leave the
# CPU to the server under test.


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    body = await reader.readexactly(length) if length else b""
    return Answer(status, headers, body)


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 5)


def _request(host: str, target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: reliability\r\n\r\n".encode()


@dataclass
class LoadResult:
    """What a load run saw."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: int = 0  # 200 with a body other than the expected one
    transport_errors: int = 0
    timeouts: int = 0  # transport errors that were a request hanging past `timeout`
    failed_clients: set[int] = field(default_factory=set)  # clients that saw an error or non-200
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # X-Request-ID of each 200

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def line(self, what: str) -> str:
        """The figures, printed by each test so a failure explains itself."""
        p99 = float(np.percentile(self.latencies, 99)) * 1000 if self.latencies else 0.0
        return (
            f"{what}: sent={self.sent} statuses={dict(self.statuses)} wrong={self.wrong} "
            f"transport_errors={self.transport_errors} timeouts={self.timeouts} seconds={self.seconds:.1f} "
            f"rate={self.rate:.0f}/s p99={p99:.1f}ms"
        )


async def run_load(
    port: int,
    targets: list[tuple[str, bytes]],
    *,
    requests: int,
    concurrency: int,
    seconds: float | None = None,
    rate: float | None = None,
    timeout: float = 30.0,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """GET the targets round-robin over `concurrency` keep-alive connections.

    Closed loop by default; with `rate`, requests are paced to that many per second in total.
    Stops after `requests` or `seconds`, whichever comes first. Each answer is bounded by
    `timeout` (a hang counts as a transport error, never waits forever).
    """
    result = LoadResult()
    host = f"127.0.0.1:{port}"
    started = time.monotonic()
    deadline = started + seconds if seconds else float("inf")
    counter = iter(range(requests))
    interval = concurrency / rate if rate else 0.0

    async def connection(index: int) -> None:
        reader = writer = None
        next_at = started + (interval * index / concurrency)
        while time.monotonic() < deadline:
            n = next(counter, None)
            if n is None:
                break
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            target, expected = targets[n % len(targets)]
            result.sent += 1
            t0 = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), timeout
                    )
                assert reader is not None
                writer.write(_request(host, target))
                answer = await asyncio.wait_for(_read_answer(reader), timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                result.transport_errors += 1
                result.timeouts += isinstance(error, TimeoutError)
                result.failed_clients.add(index)
                await _close(writer)
                reader = writer = None
                continue
            result.latencies.append(time.monotonic() - t0)
            result.statuses[answer.status] += 1
            if answer.status != 200:
                result.failed_clients.add(index)
            if answer.status == 200:
                result.ids.append(answer.headers.get(b"x-request-id", b"").decode())
                if answer.body != expected:
                    result.wrong += 1
            if answer.headers.get(b"connection", b"").lower() == b"close":
                await _close(writer)
                reader = writer = None
            if on_progress is not None:
                on_progress(result.sent)
        await _close(writer)

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    result.seconds = time.monotonic() - started
    return result


def load(port: int, targets: list[tuple[str, bytes]], **kwargs: object) -> LoadResult:
    """run_load from synchronous test code."""
    return asyncio.run(run_load(port, targets, **kwargs))  # type: ignore[arg-type]


def pids(processes: Iterable[psutil.Process]) -> set[int]:
    """The pids of some processes."""
    return {p.pid for p in processes}
