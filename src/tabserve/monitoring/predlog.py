"""The worker side of the prediction log: a bounded in-memory buffer flushed to the spool.

On the request path `record()` encodes the request and appends it to a list (no I/O, no lock);
for a request of up to `records.PREPARED_ROWS` rows it writes the rows' table JSON itself,
which spares the shipper most of its work (records.py says why). Every
`prediction_log_flush_ms` (or sooner when the buffer is large, or at once for a request that
waits with `prediction_log_sync`) one writer thread joins the buffered requests into one frame,
appends it to this worker's spool segment and fsyncs. The encoding is done on the request path
on purpose: done by the writer thread for a whole flush at once, it held the GIL for
milliseconds, and the event loop waited that long for it. The shipper (shipper.py) moves closed
segments to the database; no database I/O ever happens in a serving worker.

Guarantee: a row is durable in the spool within one flush interval; `close()` (SIGTERM) flushes
everything; a `kill -9` loses at most the rows of the last flush interval, none with sync on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tabserve.errors import OverloadedError
from tabserve.logging import get_logger
from tabserve.monitoring import records, spool
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction

FLUSH_ROWS = 4096  # flush early past this many buffered rows
MAX_BUFFER_ROWS = 200_000  # the buffer's bound: past it the log counts as full
SIZE_CHECK_S = 1.0  # how often the spool's size on disk is measured

log = get_logger("tabserve.predlog")


class PredictionLog:
    """One worker's prediction log: `await start()`, `record(...)` per request, `await close()`."""

    def __init__(self, settings: Settings, folder: Path | None = None) -> None:
        self.enabled = settings.prediction_log
        self.folder = folder if folder is not None else spool.spool_dir(settings.home)
        self.sync = settings.prediction_log_sync
        self.flush_s = settings.prediction_log_flush_ms / 1000.0
        self.max_bytes = settings.prediction_log_spool_max_bytes
        self.on_full = settings.on_log_full
        self.hash_features = settings.prediction_log_hash_features
        self._rows: list[msgspec.Raw] = []  # encoded records.LogRow of small requests
        # Their live inputs for the drift window, per (model, version, float64 or not).
        self._drift: dict[tuple[str, int, bool], bytearray | list[list[Any]]] = {}
        self._drift_unwritten: list[records.DriftRows] = []
        self._requests: list[msgspec.Raw] = []  # encoded records.RequestRecord (large requests)
        self._buffer_rows = 0
        self._manifests: list[Manifest] = []  # versions seen since the last flush
        self._writers: dict[tuple[str, int], records.RowWriter] = {}  # per version seen
        self._waiters: list[asyncio.Future[None]] = []
        self._full = False
        self._spool_size = 0
        self._last_size_check = 0.0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._writer: spool.SpoolWriter | None = None
        self._closing = False

    async def start(self) -> None:
        """Open this worker's spool and start the flush loop (call in the worker, after fork)."""
        if not self.enabled or self._task is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tabserve-predlog")
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._executor, spool.SpoolWriter, self.folder)
        self._spool_size = await loop.run_in_executor(
            self._executor, spool.spool_bytes, self.folder
        )
        self._full = self._spool_size >= self.max_bytes
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="tabserve-predlog-flush")

    @property
    def full(self) -> bool:
        """True while the spool is over prediction_log_spool_max_bytes."""
        return self._full

    def record(
        self,
        manifest: Manifest,
        request_id: str,
        client_request_id: str | None,
        rows: np.ndarray,
        prediction: Prediction,
        latency: float,
        role: str = "live",
    ) -> Awaitable[None] | None:
        """Log a served request; returns an awaitable only with prediction_log_sync on.

        Raises OverloadedError (503) when the spool is full and on_log_full is "refuse".
        """
        if self._task is None:
            return None
        if self._full or self._buffer_rows >= MAX_BUFFER_ROWS:
            if role != "live":
                return None  # shadow rows never refuse a live answer
            if self.on_full == "refuse":
                metrics.count_predlog(refused=1)
                raise OverloadedError(
                    "the prediction log is full (its database is unreachable and the spool "
                    "reached prediction_log_spool_max_bytes): retry later"
                )
            metrics.count_predlog(dropped=len(rows))
            return None
        key = (manifest.name, manifest.version)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = records.RowWriter(manifest)
            self._manifests.append(manifest)  # saved beside the spool by the writer thread
        if len(rows) <= records.PREPARED_ROWS:
            values = rows.tolist()
            proba = prediction.proba
            self._rows += writer.rows(
                request_id,
                client_request_id,
                time.time(),
                role,
                latency,
                values,
                prediction.labels.tolist(),
                None if proba is None else proba.tolist(),
                self.hash_features,
            )
            if role == "live" and not self.hash_features:
                self._add_drift(manifest, rows, values)
        else:
            self._requests.append(
                records.request_record(
                    manifest,
                    request_id,
                    client_request_id,
                    time.time(),
                    role,
                    latency,
                    rows,
                    prediction,
                    self.hash_features,
                )
            )
        self._buffer_rows += len(rows)
        if self.sync:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            self._wake.set()  # type: ignore[union-attr]  # set when _task is
            return future
        if self._buffer_rows >= FLUSH_ROWS:
            self._wake.set()  # type: ignore[union-attr]
        return None

    def _add_drift(self, manifest: Manifest, rows: np.ndarray, values: list[list[Any]]) -> None:
        numeric = rows.dtype == np.float64
        key = (manifest.name, manifest.version, numeric)
        kept = self._drift.get(key)
        if kept is None:
            kept = self._drift[key] = bytearray() if numeric else []
        if isinstance(kept, bytearray):
            kept += rows.tobytes()
        else:
            kept += values

    def _take_drift(self) -> list[records.DriftRows]:
        """The drift rows of the next frame: those a failed write left, then the new ones."""
        drift, self._drift = self._drift, {}
        unwritten, self._drift_unwritten = self._drift_unwritten, []
        return unwritten + [
            records.DriftRows(name, version, bytes(v) if isinstance(v, bytearray) else v)
            for (name, version, _), v in drift.items()
        ]

    async def _run(self) -> None:
        wake = self._wake
        if wake is None:
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.flush_s)
            wake.clear()
            await self.flush()
            if self._closing:
                return

    async def flush(self) -> None:
        """Write everything buffered to the spool now (one frame, one fsync)."""
        prepared, requests, rows = self._rows, self._requests, self._buffer_rows
        self._rows, self._requests = [], []
        drift = self._take_drift()
        self._buffer_rows = 0
        manifests, self._manifests = self._manifests, []
        waiters, self._waiters = self._waiters, []
        metrics.set_predlog_queue(0)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._executor, self._write, prepared, drift, requests, manifests
            )
        except OSError as error:
            # The disk refused (full, read-only): keep the rows for the next flush and refuse
            # or drop new ones until it accepts them again.
            self._rows[:0] = prepared
            self._requests[:0] = requests
            self._drift_unwritten = drift
            self._buffer_rows += rows
            self._manifests[:0] = manifests
            self._full = True
            log.error("prediction log spool write failed", exc_info=error, folder=str(self.folder))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(
                        OverloadedError("the prediction log cannot write its spool: retry later")
                    )
            return
        if rows:
            metrics.count_predlog(spooled=rows)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(
        self,
        prepared: list[msgspec.Raw],
        drift: list[records.DriftRows],
        requests: list[msgspec.Raw],
        manifests: list[Manifest],
    ) -> None:
        """In the writer thread: one frame of the encoded requests, fsync, rotate, measure."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("PredictionLog.start() was not awaited")
        for manifest in manifests:
            records.save_manifest(self.folder, manifest)
        if prepared or requests:
            self._spool_size += writer.append(records.encode_frame(prepared, drift, requests))
        writer.rotate_if_due()
        now = time.monotonic()
        if now - self._last_size_check >= SIZE_CHECK_S:
            self._last_size_check = now
            self._spool_size = spool.spool_bytes(self.folder)
        self._full = self._spool_size >= self.max_bytes

    async def close(self) -> None:
        """Flush the buffer and close this worker's segment (on SIGTERM, before exit)."""
        task = self._task
        if task is None or self._closing:
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._rows or self._requests or self._waiters:  # recorded after the loop's last flush
            await self.flush()
        self._task = None
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            await loop.run_in_executor(self._executor, self._writer.close_segment)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
