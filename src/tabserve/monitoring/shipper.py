"""The shipper: moves closed spool segments into the prediction-log database, one per server.

It ships each segment in batches with idempotent inserts, deletes the segment only after the
commit, retries with backoff while the database is down or slow (rows wait in the spool), ships
leftovers at start, prunes rows past retention, and computes drift (it sees every live row).

Run it as a process supervised by the server's master (`start_shipper(settings)` in the master,
`handle.stop()` at exit) or as a thread in a single-process server and tests
(`ShipperThread`). Only one shipper works on a spool at a time (an flock on `shipper.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np

from tabserve.errors import DatabaseError, TabserveError
from tabserve.logging import get_logger
from tabserve.monitoring import feedback, records, spool
from tabserve.monitoring.drift import DriftTracker
from tabserve.monitoring.sinks import Sink, sink_from_settings
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.types import Manifest

BATCH_ROWS = 5000
DRIFT_CHUNK_ROWS = 500  # live rows per drift-window update (the window holds 10,000)
SHIPPER_NICE = 10  # CPU priority below the workers (os.nice increment)
IDLE_POLL_S = 0.2
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0
PRUNE_EVERY_S = 3600.0
PERFORMANCE_EVERY_S = 2.0  # how often live accuracy is recomputed from feedback
PERFORMANCE_WINDOW_S = 86400.0  # feedback received in the last 24 h ...
PERFORMANCE_WINDOW_ROWS = 10_000  # ... at most this many most recent labels

log = get_logger("tabserve.shipper")


class _LiveRows:
    """A segment's live input rows per model version, handed to the drift window at the end.

    Rows come as float64 bytes (all-numeric models, one `frombuffer` per version for the whole
    segment) or as lists of values. They reach the window in chunks of DRIFT_CHUNK_ROWS: one
    add per request (one row at the lecture's GET) cost ~40 us a row in numpy call overhead,
    and the window drops whole old chunks, so they stay small beside it.
    """

    def __init__(self) -> None:
        self._bytes: dict[int, tuple[Manifest, list[bytes]]] = {}
        self._lists: dict[int, tuple[Manifest, list[list[object]]]] = {}

    def add(self, manifest: Manifest, values: bytes | list[list[object]]) -> None:
        """Rows as float64 bytes, or as lists of values in feature order."""
        if isinstance(values, bytes):
            self._bytes.setdefault(id(manifest), (manifest, []))[1].append(values)
        else:
            self._lists.setdefault(id(manifest), (manifest, []))[1].extend(values)

    def add_to(self, drift: DriftTracker) -> None:
        """Add every row to the drift window, chunk by chunk."""
        for manifest, chunks in self._bytes.values():
            width = len(manifest.features)
            matrix = np.frombuffer(b"".join(chunks), dtype=np.float64).reshape(-1, width)
            for start in range(0, len(matrix), DRIFT_CHUNK_ROWS):
                drift.add(manifest, matrix[start : start + DRIFT_CHUNK_ROWS])
        for manifest, rows in self._lists.values():
            for start in range(0, len(rows), DRIFT_CHUNK_ROWS):
                drift.add(manifest, rows[start : start + DRIFT_CHUNK_ROWS])


def _checked_width(manifest: Manifest, values: bytes | list[Any]) -> bytes | list[Any]:
    """Float64 row bytes must hold whole rows of the manifest's features (the drift window
    reshapes them); raises ValueError otherwise."""
    width = 8 * len(manifest.features)
    if isinstance(values, bytes) and (not width or len(values) % width):
        raise ValueError(
            f"{len(values)} bytes of inputs are not whole rows of "
            f"{manifest.name} v{manifest.version}'s {len(manifest.features)} features"
        )
    return values


class Shipper:
    """Ships a spool folder to a sink; `run()` loops until `stop` is set, then drains."""

    def __init__(
        self,
        settings: Settings,
        folder: Path | None = None,
        sink: Sink | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.settings = settings
        self.folder = folder if folder is not None else spool.spool_dir(settings.home)
        self.sink = sink if sink is not None else sink_from_settings(settings)
        self.batch_rows = batch_rows
        self.drift = DriftTracker()
        self._manifests: dict[tuple[str, int], Manifest | None] = {}
        self._opened = False
        self._last_prune = 0.0
        self._last_performance = 0.0

    def _manifest(self, name: str, version: int) -> Manifest | None:
        key = (name, version)
        if self._manifests.get(key) is None:
            self._manifests[key] = records.load_manifest(self.folder, name, version)
        return self._manifests[key]

    def ship_segment(self, path: Path) -> int:
        """Write every row of one closed segment, then delete it; returns rows newly written."""
        if not self._opened:
            self.sink.open()
            self._opened = True
        rows: list[records.LogRow] = []
        written = 0
        live = _LiveRows()
        rejected: list[bytes] = []
        first_error = ""
        for payload in spool.read_frames(path):
            try:
                frame_rows, frame_live = self._decode(payload)
            except (msgspec.DecodeError, ValueError, TypeError) as error:
                first_error = first_error or str(error)
                rejected.append(payload)
                continue
            rows += frame_rows
            for manifest, values in frame_live:
                live.add(manifest, values)
            if len(rows) >= self.batch_rows:
                written += self.sink.write(rows)
                rows = []
        if rows:
            written += self.sink.write(rows)
        if rejected:
            kept = spool.set_aside(self.folder, path, rejected)
            metrics.count_predlog(rejected_frames=len(rejected))
            log.error(
                "prediction log frames cannot be decoded; set aside, the rest of the segment "
                "shipped; inspect the file, its rows are not in the database",
                frames=len(rejected),
                error=first_error,
                kept=str(kept),
            )
        # Deleted only after every batch committed: a crash before this re-ships the segment,
        # and the idempotent insert skips the rows already there.
        path.unlink(missing_ok=True)
        live.add_to(self.drift)
        if written:
            metrics.count_predlog(written=written)
        return written

    def _decode(
        self, payload: bytes
    ) -> tuple[list[records.LogRow], list[tuple[Manifest, bytes | list[Any]]]]:
        """One frame's table rows and its live inputs per manifest; raises if it is corrupt."""
        rows, drift, requests = records.decode_frame(payload)
        live: list[tuple[Manifest, bytes | list[Any]]] = []
        for d in drift:
            manifest = self._manifest(d.model, d.version)
            if manifest is not None:
                live.append((manifest, _checked_width(manifest, d.values)))
        for rec in requests:
            manifest = self._manifest(rec.model, rec.version)
            names = [f.name for f in manifest.features] if manifest is not None else None
            rows.extend(records.explode(rec, names))
            # Hashed rows (str digests) carry no values to measure drift on.
            if (
                manifest is not None
                and rec.role == "live"
                and rec.inputs
                and (isinstance(rec.inputs, bytes) or not isinstance(rec.inputs[0], str))
            ):
                live.append((manifest, _checked_width(manifest, rec.inputs)))
        return rows, live

    def run_once(self) -> int:
        """Ship every closed segment (and those of dead workers); returns rows written."""
        spool.claim_orphans(self.folder)
        total = 0
        for path in spool.closed_segments(self.folder):
            total += self.ship_segment(path)
        self._publish()
        self._maybe_publish_performance()
        self._maybe_prune()
        return total

    def _publish(self) -> None:
        metrics.set_spool_bytes(spool.spool_bytes(self.folder))
        for model in self.drift.changed:
            metrics.set_drift(model, self.drift.psi(model))
        self.drift.changed.clear()

    def _maybe_publish_performance(self) -> None:
        """Live accuracy (RMSE) per model version over the recent feedback window."""
        now = time.monotonic()
        if now - self._last_performance < PERFORMANCE_EVERY_S:
            return
        self._last_performance = now
        latest: dict[str, int] = {}
        for name, version in records.saved_manifests(self.folder):
            latest[name] = max(version, latest.get(name, version))
        since = time.time() - PERFORMANCE_WINDOW_S
        for name, version in latest.items():
            manifest = self._manifest(name, version)
            if manifest is None:
                continue
            rows = self.sink.labelled(name, since, PERFORMANCE_WINDOW_ROWS)
            feedback.publish_window(name, rows, regression=manifest.task == "regression")

    def _maybe_prune(self) -> None:
        now = time.time()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        cutoff = now - self.settings.prediction_log_retention_days * 86400
        deleted = self.sink.prune(cutoff)
        self._last_prune = now
        if deleted:
            log.info(
                "prediction log pruned",
                rows=deleted,
                days=self.settings.prediction_log_retention_days,
            )

    def run(self, stop: threading.Event, drain_timeout: float | None = None) -> None:
        """Ship until `stop` is set; then drain what is left within `drain_timeout` seconds."""
        self.folder.mkdir(parents=True, exist_ok=True)
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            try:
                self.run_once()
                backoff = BACKOFF_MIN_S
                stop.wait(IDLE_POLL_S)
            except TabserveError as error:
                metrics.count_ship_error()
                self._opened = False
                log.warning(
                    "prediction log shipping failed; retrying",
                    error=error.message,
                    retry_in_s=backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception as error:  # keep shipping whatever one segment did
                metrics.count_ship_error()
                self._opened = False
                log.error("prediction log shipper error; retrying", exc_info=error)
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        self.drain(drain_timeout if drain_timeout is not None else self.settings.graceful_timeout)

    def drain(self, timeout: float) -> bool:
        """Ship everything left, retrying until `timeout`; True when the spool is empty."""
        deadline = time.monotonic() + timeout
        backoff = BACKOFF_MIN_S
        while True:
            try:
                self.run_once()
                if not spool.closed_segments(self.folder):
                    return True
            except TabserveError as error:
                self._opened = False
                metrics.count_ship_error()
                if time.monotonic() + backoff > deadline:
                    log.warning(
                        "prediction log left in the spool; shipped at next start",
                        error=error.message,
                    )
                    return False
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            if time.monotonic() > deadline:
                return False

    def close(self) -> None:
        """Close the sink."""
        self.sink.close()


def _lock(folder: Path) -> IO[bytes]:
    """Hold the spool's shipper lock; blocks while another shipper has it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / "shipper.lock").open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


class ShipperThread:
    """The shipper as a thread, for a single-process server (`serve --dev`) and tests."""

    def __init__(
        self, settings: Settings, folder: Path | None = None, sink: Sink | None = None
    ) -> None:
        self.shipper = Shipper(settings, folder, sink)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tabserve-shipper", daemon=True)

    def _main(self) -> None:
        lock = _lock(self.shipper.folder)
        try:
            self.shipper.run(self._stop)
        finally:
            self.shipper.close()
            lock.close()

    def start(self) -> ShipperThread:
        """Start shipping in the background."""
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain (within the graceful timeout) and stop."""
        self._stop.set()
        limit = self.shipper.settings.graceful_timeout if timeout is None else timeout
        self._thread.join(limit + 5)


class ShipperProcess:
    """The shipper as a child process of the server's master, restarted if it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="tabserve-shipper-supervisor", daemon=True
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["TABSERVE_HOME"] = str(self.settings.home)
        env["TABSERVE_GRACEFUL_TIMEOUT"] = str(self.settings.graceful_timeout)
        env["TABSERVE_PREDICTION_LOG_RETENTION_DAYS"] = str(
            self.settings.prediction_log_retention_days
        )
        if self.settings.prediction_log_url is not None:
            env["TABSERVE_PREDICTION_LOG_URL"] = self.settings.prediction_log_url.get_secret_value()
        password = self.settings.database_password()
        if password is not None:
            env["TABSERVE_DB_PASSWORD"] = password
        env["TABSERVE_LOG_LEVEL"] = self.settings.log_level
        env["TABSERVE_LOG_FORMAT"] = self.settings.log_format
        # A session of its own: a terminal's Ctrl-C reaches the master, which stops the shipper
        # only after the workers flushed, instead of the shipper quitting before their last rows.
        return subprocess.Popen(
            [sys.executable, "-m", "tabserve.monitoring.shipper"], env=env, start_new_session=True
        )

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                log.warning(
                    "prediction log shipper exited; restarting", pid=proc.pid, code=proc.returncode
                )
                self._stopping.wait(1.0)
                if not self._stopping.is_set():
                    self.proc = self._spawn()
            self._stopping.wait(1.0)

    def start(self) -> ShipperProcess:
        """Start the shipper process and its supervisor."""
        self.proc = self._spawn()
        self._supervisor.start()
        return self

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the shipper; it drains within the graceful timeout; killed past it."""
        self._stopping.set()
        proc = self.proc
        if proc is None:
            return None
        limit = self.settings.graceful_timeout if timeout is None else timeout
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(limit + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)


def start_shipper(settings: Settings) -> ShipperProcess:
    """In the server's master, before forking workers: start the supervised shipper process."""
    return ShipperProcess(settings).start()


def stop_shipper(handle: ShipperProcess, timeout: float | None = None) -> None:
    """In the server's master at exit (after workers flushed): drain and stop the shipper."""
    handle.stop(timeout)


def main() -> None:
    """`python -m tabserve.monitoring.shipper`: ship until SIGTERM or the parent dies."""
    from tabserve import logging as tlog

    settings = Settings.model_validate({})
    tlog.configure(settings.log_level, settings.log_format)
    # Below the serving workers: under saturation the shipper yields the cores to them and its
    # rows wait in the spool (bounded, drained afterwards); idle cores still run it at once.
    with contextlib.suppress(OSError):
        os.nice(SHIPPER_NICE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()

    def watch_parent() -> None:
        # An orphaned shipper (master killed with -9) drains and exits instead of lingering.
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    shipper = Shipper(settings)
    lock = _lock(shipper.folder)
    log.info("prediction log shipper started", pid=os.getpid(), folder=str(shipper.folder))
    try:
        shipper.run(stop)
    except DatabaseError as error:
        log.error("prediction log shipper stopped", error=error.message)
    finally:
        shipper.close()
        lock.close()
    log.info("prediction log shipper stopped", pid=os.getpid())


if __name__ == "__main__":
    main()
