"""Every Prometheus metric of tabserve, correct under several server worker processes.

Multiprocess mode: the server's master calls `prepare_multiprocess_dir(path)` before it forks;
each process then writes its values to mmap'd files in that folder and `render()` aggregates
every process's files, so `GET /metrics` never shows one worker's view. Without the folder
(tests, `serve --dev`) the metrics live in this process only.

The hot path calls the small `observe_*` / `count_*` functions below; they count in plain
Python and fold into the Prometheus values once per event-loop pass (see "the hot path").
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import math
import os
import shutil
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path
from threading import get_ident
from typing import Any

import numpy as np
import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from tabserve.types import Manifest

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000)
QUEUE_WAIT_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1)

# Module globals, rebuilt by _build() when the multiprocess folder is set after import.
_registry: CollectorRegistry
HTTP_REQUESTS: Counter
HTTP_DURATION: Histogram
HTTP_IN_FLIGHT: Gauge
PREDICTIONS: Counter
BATCH_SIZE: Histogram
BATCH_QUEUE_WAIT: Histogram
MODEL_LOAD_SECONDS: Gauge
MODEL_READY: Gauge
VALIDATION_FAILURES: Counter
OUT_OF_RANGE: Counter
MISSING: Counter
DRIFT_PSI: Gauge
PREDLOG_QUEUE_ROWS: Gauge
PREDLOG_WRITTEN: Counter
PREDLOG_SPOOLED: Counter
PREDLOG_DROPPED: Counter
PREDLOG_REFUSED: Counter
PREDLOG_SPOOL_BYTES: Gauge
PREDLOG_SHIP_ERRORS: Counter
PREDLOG_REJECTED_FRAMES: Counter
FEEDBACK_LABELS: Counter
LIVE_ACCURACY: Gauge
LIVE_RMSE: Gauge
SHADOW_PREDICTIONS: Counter
SHADOW_DISAGREEMENTS: Counter
SHADOW_ERRORS: Counter
SHADOW_LATENCY: Histogram
SHADOW_DROPPED: Counter
MODEL_SWAPS: Counter
MODEL_SWAP_FAILURES: Counter

_children: dict[tuple[Any, ...], Any] = {}
_passes: dict[int, _Pass] = {}  # the open pass of each thread running an event loop
_loops: dict[int, asyncio.AbstractEventLoop] = {}  # the loop each thread last ran
_timers: dict[int, asyncio.AbstractEventLoop] = {}  # threads with a FOLD_LATEST_S fold pending
_in_flight = 0  # this process's requests in flight
_in_flight_set = 0  # the value last written to HTTP_IN_FLIGHT


_process_id = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _process_id.__setitem__(0, os.getpid()))
_pid = functools.partial(_process_id.__getitem__, 0)  # this process's id, without a syscall


def _build() -> None:
    """(Re)create every metric with the value class the environment asks for."""
    global _registry, HTTP_REQUESTS, HTTP_DURATION, HTTP_IN_FLIGHT, PREDICTIONS, BATCH_SIZE
    global BATCH_QUEUE_WAIT, MODEL_LOAD_SECONDS, MODEL_READY, VALIDATION_FAILURES, OUT_OF_RANGE
    global MISSING, DRIFT_PSI, PREDLOG_QUEUE_ROWS, PREDLOG_WRITTEN, PREDLOG_SPOOLED
    global PREDLOG_DROPPED, PREDLOG_REFUSED, PREDLOG_SPOOL_BYTES, PREDLOG_SHIP_ERRORS
    global PREDLOG_REJECTED_FRAMES
    global FEEDBACK_LABELS, LIVE_ACCURACY, LIVE_RMSE, SHADOW_PREDICTIONS, SHADOW_DISAGREEMENTS
    global SHADOW_ERRORS, SHADOW_LATENCY, SHADOW_DROPPED, MODEL_SWAPS, MODEL_SWAP_FAILURES
    # prometheus_client picks mmap'd or in-memory values once, at its import; the master may
    # import us before it sets the folder, so the choice is made again here. Mmap'd values ask
    # for the process id at every inc to notice a fork, by default with os.getpid(): a system
    # call per value (~10 per folded loop pass). _pid() is the same id, kept at each fork.
    values.ValueClass = (
        values.MultiProcessValue(process_identifier=_pid)  # type: ignore[no-untyped-call]
        if ENV_DIR in os.environ
        else values.MutexValue
    )
    global _in_flight_set
    _children.clear()
    _passes.clear()
    _timers.clear()
    _in_flight_set = 0
    r = _registry = CollectorRegistry(auto_describe=True)

    HTTP_REQUESTS = Counter(
        "tabserve_http_requests",
        "HTTP requests answered, by route template, method and status.",
        ["route", "method", "status"],
        registry=r,
    )
    HTTP_DURATION = Histogram(
        "tabserve_http_request_duration_seconds",
        "Time from request received to response sent.",
        ["route", "method"],
        buckets=REQUEST_BUCKETS,
        registry=r,
    )
    HTTP_IN_FLIGHT = Gauge(
        "tabserve_http_requests_in_flight",
        "Requests being handled right now, across every worker.",
        registry=r,
        multiprocess_mode="livesum",
    )
    PREDICTIONS = Counter(
        "tabserve_predictions",
        "Predicted rows by model, version and predicted class (empty for regressors).",
        ["model", "version", "class"],
        registry=r,
    )
    BATCH_SIZE = Histogram(
        "tabserve_batch_size_rows",
        "Rows in each predict call of the adaptive batcher.",
        ["model"],
        buckets=BATCH_ROW_BUCKETS,
        registry=r,
    )
    BATCH_QUEUE_WAIT = Histogram(
        "tabserve_batch_queue_wait_seconds",
        "Time a request waited in the batcher before its predict call started.",
        ["model"],
        buckets=QUEUE_WAIT_BUCKETS,
        registry=r,
    )
    MODEL_LOAD_SECONDS = Gauge(
        "tabserve_model_load_seconds",
        "Time the last load of a model version took (slowest worker).",
        ["model", "version"],
        registry=r,
        multiprocess_mode="max",
    )
    MODEL_READY = Gauge(
        "tabserve_model_ready",
        "1 when the model version is loaded and self-tested in every live worker.",
        ["model", "version"],
        registry=r,
        multiprocess_mode="livemin",
    )
    VALIDATION_FAILURES = Counter(
        "tabserve_validation_failures",
        "Requests refused by schema validation, by reason.",
        ["model", "reason"],
        registry=r,
    )
    OUT_OF_RANGE = Counter(
        "tabserve_feature_out_of_range",
        "Served values outside the training range [min, max] of the feature.",
        ["model", "feature"],
        registry=r,
    )
    MISSING = Counter(
        "tabserve_feature_missing",
        "Served rows with the feature missing (null / NaN).",
        ["model", "feature"],
        registry=r,
    )
    DRIFT_PSI = Gauge(
        "tabserve_feature_drift_psi",
        "Population stability index of the recent live window against the training histogram.",
        ["model", "feature"],
        registry=r,
        multiprocess_mode="mostrecent",
    )
    PREDLOG_QUEUE_ROWS = Gauge(
        "tabserve_prediction_log_queue_rows",
        "Prediction-log rows buffered in worker memory, not yet in the spool.",
        registry=r,
        multiprocess_mode="livesum",
    )
    PREDLOG_WRITTEN = Counter(
        "tabserve_prediction_log_rows_written",
        "Prediction-log rows committed to the database.",
        registry=r,
    )
    PREDLOG_SPOOLED = Counter(
        "tabserve_prediction_log_rows_spooled",
        "Prediction-log rows appended to the on-disk spool.",
        registry=r,
    )
    PREDLOG_DROPPED = Counter(
        "tabserve_prediction_log_rows_dropped",
        "Prediction-log rows dropped because the spool was full (on_log_full=drop).",
        registry=r,
    )
    PREDLOG_REFUSED = Counter(
        "tabserve_prediction_log_refused_requests",
        "Predictions refused with 503 because the spool was full (on_log_full=refuse).",
        registry=r,
    )
    PREDLOG_SPOOL_BYTES = Gauge(
        "tabserve_prediction_log_spool_bytes",
        "Bytes waiting in the on-disk spool to be shipped to the database.",
        registry=r,
        multiprocess_mode="mostrecent",
    )
    PREDLOG_SHIP_ERRORS = Counter(
        "tabserve_prediction_log_ship_errors",
        "Failed attempts to ship spooled rows to the database (retried with backoff).",
        registry=r,
    )
    PREDLOG_REJECTED_FRAMES = Counter(
        "tabserve_prediction_log_rejected_frames",
        "Spool frames the shipper could not decode, kept in the spool's rejected/ folder.",
        registry=r,
    )
    FEEDBACK_LABELS = Counter(
        "tabserve_feedback_labels",
        "True labels attached to logged predictions.",
        ["model"],
        registry=r,
    )
    LIVE_ACCURACY = Gauge(
        "tabserve_live_accuracy_ratio",
        "Accuracy of logged predictions that received feedback, over the recent window.",
        ["model", "version"],
        registry=r,
        multiprocess_mode="mostrecent",
    )
    LIVE_RMSE = Gauge(
        "tabserve_live_rmse",
        "RMSE of logged regression predictions that received feedback, over the recent window.",
        ["model", "version"],
        registry=r,
        multiprocess_mode="mostrecent",
    )
    SHADOW_PREDICTIONS = Counter(
        "tabserve_shadow_predictions",
        "Rows predicted by a shadow model version alongside the live one.",
        ["model", "version"],
        registry=r,
    )
    SHADOW_DISAGREEMENTS = Counter(
        "tabserve_shadow_disagreements",
        "Rows where the shadow version's label differs from the live version's.",
        ["model", "version"],
        registry=r,
    )
    SHADOW_ERRORS = Counter(
        "tabserve_shadow_errors",
        "Shadow predictions that failed (the live answer is unaffected).",
        ["model", "version"],
        registry=r,
    )
    SHADOW_LATENCY = Histogram(
        "tabserve_shadow_latency_seconds",
        "Time a shadow version took to predict a copied request (batcher wait included).",
        ["model", "version"],
        buckets=REQUEST_BUCKETS,
        registry=r,
    )
    SHADOW_DROPPED = Counter(
        "tabserve_shadow_dropped",
        "Copied requests dropped because the shadow version lagged (its queue was full).",
        ["model", "version"],
        registry=r,
    )
    MODEL_SWAPS = Counter(
        "tabserve_model_swaps",
        "Hot swaps to another version of a served model (each worker counts its own).",
        ["model"],
        registry=r,
    )
    MODEL_SWAP_FAILURES = Counter(
        "tabserve_model_swap_failures",
        "Versions not swapped in: fetch, verification, load or self-test failed (old kept).",
        ["model"],
        registry=r,
    )


_build()


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """In the server's master, before forking: empty `path`, export it, rebuild the metrics."""
    folder = Path(path)
    if folder.exists():
        for stale in folder.glob("*.db"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(folder)
    _build()
    return folder


def multiprocess_dir() -> str | None:
    """The multiprocess folder in use, or None in single-process mode."""
    return os.environ.get(ENV_DIR) or None


def forget_dead_workers() -> None:
    """Drop the live gauges (in-flight, ready) of worker processes that no longer exist.

    Called as each worker starts and at each scrape: a worker that exited, cleanly or killed
    with SIGKILL, no longer counts in them. Counters and histograms of dead workers stay:
    their totals are still part of the server's.
    """
    folder = multiprocess_dir()
    if folder is None:
        return
    pids: set[int] = set()
    for path in Path(folder).glob("gauge_live*_*.db"):
        digits = path.stem.rpartition("_")[2]
        if digits.isdigit():
            pids.add(int(digits))
    for pid in pids:
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(path: str | os.PathLike[str]) -> None:
    """In the master at shutdown: delete the folder prepare_multiprocess_dir made."""
    shutil.rmtree(path, ignore_errors=True)


def render() -> tuple[bytes, str]:
    """The body and Content-Type for `GET /metrics`, aggregated over every worker process."""
    flush()
    folder = multiprocess_dir()
    if folder is None:
        return generate_latest(_registry), CONTENT_TYPE_LATEST
    forget_dead_workers()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


# --- the hot path -------------------------------------------------------------------------
# Requests are counted in plain Python and folded into the Prometheus values in few writes. A
# value write in multiprocess mode costs ~1-2 us (a lock, a pid check, a struct pack into the
# mmap) and a request made ~10 of them. Each answered request schedules a fold with
# `call_soon`, once per event-loop pass, so it runs before the loop next waits for I/O: a
# scrape of any worker, sent after a response arrived, sees that response counted. Under load
# one fold covers every request a pass answered; an idle server's lone request, which may span
# several passes (read, a threaded predict, answer), is folded once, not once per pass. Counts
# made outside a request (shadow traffic, the registry poller) are folded within FOLD_LATEST_S.
# Without a running loop (scripts, other threads) each count is written at once.

FOLD_LATEST_S = 0.05


class _Pass:
    """Counts not yet folded into the Prometheus values (one thread's, since its last fold)."""

    __slots__ = ("counts", "due", "hists")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], float] = {}
        self.hists: dict[tuple[str, ...], list[float]] = {}  # bucket counts, then the sum
        self.due = False  # a fold is scheduled for the end of this loop pass


_BOUNDS = {
    "HTTP_DURATION": (*REQUEST_BUCKETS, math.inf),
    "BATCH_SIZE": (*BATCH_ROW_BUCKETS, math.inf),
    "BATCH_QUEUE_WAIT": (*QUEUE_WAIT_BUCKETS, math.inf),
}


def _current() -> _Pass | None:
    """This thread's open pass (opened, and its fold scheduled, by the pass's first count)."""
    # By thread id first: on Python 3.11 get_running_loop() makes a getpid() system call
    # (~0.6 us here), once per pass instead of once per count.
    tid = get_ident()
    p = _passes.get(tid)
    if p is not None:
        return p
    # The loop last seen running in this thread, while it still runs: once per pass (each
    # request at c=1), get_running_loop's getpid() showed as ~7% of a request in a profile.
    loop = _loops.get(tid)
    if loop is None or not loop.is_running():
        try:
            loop = _loops[tid] = asyncio.get_running_loop()
        except RuntimeError:
            _loops.pop(tid, None)
            return None
    p = _passes[tid] = _Pass()
    if _timers.get(tid) is not loop:
        _timers[tid] = loop
        loop.call_later(FOLD_LATEST_S, _fold_late, tid, loop)
    return p


def _fold_late(tid: int, loop: asyncio.AbstractEventLoop) -> None:
    if _timers.get(tid) is loop:
        del _timers[tid]
    p = _passes.get(tid)
    if p is not None:
        _end_pass(tid, p)


def _fold_soon() -> None:
    """Fold this thread's counts before its loop next waits for I/O (a request was answered)."""
    tid = get_ident()
    p = _passes.get(tid)
    if p is not None and not p.due:
        p.due = True
        _loops[tid].call_soon(_end_pass, tid, p)


def _end_pass(tid: int, p: _Pass) -> None:
    if _passes.get(tid) is p:
        del _passes[tid]
        _fold(p)


def _resolve(key: tuple[str, ...]) -> Any:
    """The Prometheus child for (metric global name, *labels)."""
    child = _children.get(key)
    if child is None:
        metric = globals()[key[0]]
        child = _children[key] = metric.labels(*key[1:]) if len(key) > 1 else metric
    return child


def _fold(p: _Pass) -> None:
    global _in_flight_set
    for key, amount in p.counts.items():
        _resolve(key).inc(amount)
    for key, h in p.hists.items():
        child = _resolve(key)
        # Histogram.observe's own storage: one non-cumulative value per bucket, and the sum.
        buckets = child._buckets
        for i in range(len(h) - 1):
            if h[i]:
                buckets[i].inc(h[i])
        child._sum.inc(h[-1])
    if _in_flight != _in_flight_set:
        _in_flight_set = _in_flight
        HTTP_IN_FLIGHT.set(_in_flight)


def _count(key: tuple[str, ...], amount: float = 1) -> None:
    p = _current()
    if p is None:
        _resolve(key).inc(amount)
        return
    counts = p.counts
    counts[key] = counts.get(key, 0) + amount


def _observe(key: tuple[str, ...], value: float) -> None:
    p = _current()
    if p is None:
        _resolve(key).observe(value)
        return
    h = p.hists.get(key)
    bounds = _BOUNDS[key[0]]
    if h is None:
        h = p.hists[key] = [0.0] * (len(bounds) + 1)
    h[bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value, as observe
    h[-1] += value


def flush() -> None:
    """Fold this thread's open pass now (before a scrape answered on this loop)."""
    tid = get_ident()
    p = _passes.get(tid)
    if p is not None:
        _end_pass(tid, p)


@atexit.register
def _fold_all() -> None:
    """At exit: fold passes whose loop stopped before their fold ran."""
    for tid, p in list(_passes.items()):
        _end_pass(tid, p)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request; `route` is the route template, never the raw path."""
    _count(("HTTP_REQUESTS", route, method, str(status)))
    _observe(("HTTP_DURATION", route, method), seconds)
    _fold_soon()


def _in_flight_changed() -> None:
    if _current() is None:
        global _in_flight_set
        _in_flight_set = _in_flight
        HTTP_IN_FLIGHT.set(_in_flight)


def request_started() -> None:
    """One more request in flight."""
    global _in_flight
    _in_flight += 1
    _in_flight_changed()


def request_finished() -> None:
    """One request fewer in flight."""
    global _in_flight
    _in_flight -= 1
    _in_flight_changed()


def observe_batch(model: str, rows: int, wait_seconds: float) -> None:
    """One predict call of the batcher: its rows and how long its oldest request waited."""
    _observe(("BATCH_SIZE", model), rows)
    _observe(("BATCH_QUEUE_WAIT", model), wait_seconds)


def count_predictions(
    model: str, version: int | str, labels: np.ndarray, *, regression: bool = False
) -> None:
    """Count predicted rows by class (one series per class; regressors count under class="")."""
    v = str(version)
    n = len(labels)
    if n == 0:
        return
    if regression:
        _count(("PREDICTIONS", model, v, ""), n)
    elif n == 1:
        _count(("PREDICTIONS", model, v, str(labels[0])))
    else:
        classes, counts = np.unique(labels, return_counts=True)
        for cls, count in zip(classes.tolist(), counts.tolist(), strict=True):
            _count(("PREDICTIONS", model, v, str(cls)), count)


def count_validation_failure(model: str, reason: str) -> None:
    """One request refused by validation; `reason` is a short fixed word (missing, type, range...)."""
    _count(("VALIDATION_FAILURES", model, reason))


class _Bounds:
    """Per-manifest arrays for the range check, built once."""

    __slots__ = ("hi", "index", "lo", "names")

    def __init__(self, manifest: Manifest) -> None:
        numeric = [i for i, f in enumerate(manifest.features) if f.kind == "number"]
        self.index = np.array(numeric, dtype=np.intp)
        self.names = [f.name for f in manifest.features]
        feats = manifest.features
        self.lo = np.array([feats[i].min if feats[i].min is not None else -np.inf for i in numeric])
        self.hi = np.array([feats[i].max if feats[i].max is not None else np.inf for i in numeric])


_bounds: dict[tuple[str, int, str], _Bounds] = {}


def _bounds_for(manifest: Manifest) -> _Bounds:
    key = (manifest.name, manifest.version, manifest.created_at)
    b = _bounds.get(key)
    if b is None:
        b = _bounds[key] = _Bounds(manifest)
    return b


def count_out_of_range(model: str, manifest: Manifest, rows: np.ndarray) -> None:
    """Count values outside the training range and missing values, per feature (call per batch)."""
    b = _bounds_for(manifest)
    if rows.dtype == np.float64:
        num = rows if len(b.index) == rows.shape[1] else rows[:, b.index]
    else:
        _count_missing_categories(model, manifest, rows)
        num = np.array(rows[:, b.index], dtype=np.float64)
    # One combined test for the common case: every value present and in range (NaN fails it).
    if ((num >= b.lo) & (num <= b.hi)).all():
        return
    missing = np.isnan(num)
    out = ~missing & ((num < b.lo) | (num > b.hi))
    for j, count in enumerate(out.sum(axis=0).tolist()):
        if count:
            _child(OUT_OF_RANGE, model, b.names[int(b.index[j])]).inc(count)
    for j, count in enumerate(missing.sum(axis=0).tolist()):
        if count:
            _child(MISSING, model, b.names[int(b.index[j])]).inc(count)


def _count_missing_categories(model: str, manifest: Manifest, rows: np.ndarray) -> None:
    for i, feature in enumerate(manifest.features):
        if feature.kind != "category":
            continue
        count = sum(1 for value in rows[:, i] if value is None)
        if count:
            _child(MISSING, model, feature.name).inc(count)


# --- model lifecycle, prediction log, drift, feedback, shadow -----------------------------


def set_model_loaded(model: str, version: int | str, seconds: float) -> None:
    """A worker loaded and self-tested a version: record load time, mark it ready."""
    v = str(version)
    MODEL_LOAD_SECONDS.labels(model, v).set(seconds)
    MODEL_READY.labels(model, v).set(1)


def set_model_ready(model: str, version: int | str, ready: bool) -> None:
    """Mark a version ready (1) or not (0) in this worker."""
    MODEL_READY.labels(model, str(version)).set(1 if ready else 0)


def set_predlog_queue(rows: int) -> None:
    """Rows this worker holds in memory for the prediction log."""
    PREDLOG_QUEUE_ROWS.set(rows)


def count_predlog(
    *,
    spooled: int = 0,
    written: int = 0,
    dropped: int = 0,
    refused: int = 0,
    rejected_frames: int = 0,
) -> None:
    """Prediction-log counters: rows spooled (worker), written (shipper), dropped; requests
    refused; frames rejected (shipper)."""
    if spooled:
        PREDLOG_SPOOLED.inc(spooled)
    if written:
        PREDLOG_WRITTEN.inc(written)
    if dropped:
        PREDLOG_DROPPED.inc(dropped)
    if refused:
        PREDLOG_REFUSED.inc(refused)
    if rejected_frames:
        PREDLOG_REJECTED_FRAMES.inc(rejected_frames)


def count_ship_error() -> None:
    """One failed attempt to ship the spool to the database."""
    PREDLOG_SHIP_ERRORS.inc()


def set_spool_bytes(size: int) -> None:
    """Bytes waiting in the spool (set by the shipper)."""
    PREDLOG_SPOOL_BYTES.set(size)


def set_drift(model: str, psi: Iterable[tuple[str, float]]) -> None:
    """Set the PSI gauge for each (feature, psi) of a model."""
    for feature, value in psi:
        DRIFT_PSI.labels(model, feature).set(value)


def count_feedback(model: str, labels: int) -> None:
    """True labels attached to logged predictions."""
    FEEDBACK_LABELS.labels(model).inc(labels)


def set_live_performance(
    model: str, version: int | str, *, accuracy: float | None = None, rmse: float | None = None
) -> None:
    """Live accuracy (classifiers) or RMSE (regressors) over the feedback window."""
    if accuracy is not None:
        LIVE_ACCURACY.labels(model, str(version)).set(accuracy)
    if rmse is not None:
        LIVE_RMSE.labels(model, str(version)).set(rmse)


def count_shadow(model: str, version: int | str, rows: int, disagreements: int) -> None:
    """Rows a shadow version predicted, and how many labels differ from the live answer."""
    v = str(version)
    _child(SHADOW_PREDICTIONS, model, v).inc(rows)
    if disagreements:
        _child(SHADOW_DISAGREEMENTS, model, v).inc(disagreements)


def count_shadow_error(model: str, version: int | str) -> None:
    """A shadow prediction failed."""
    _child(SHADOW_ERRORS, model, str(version)).inc()


def observe_shadow_latency(model: str, version: int | str, seconds: float) -> None:
    """How long a shadow version took for one copied request."""
    _child(SHADOW_LATENCY, model, str(version)).observe(seconds)


def count_shadow_dropped(model: str, version: int | str) -> None:
    """A copied request dropped: the shadow's queue was full."""
    _child(SHADOW_DROPPED, model, str(version)).inc()


def count_swap(model: str, *, failed: bool = False) -> None:
    """One hot swap done, or (failed=True) a version refused and the old one kept."""
    (MODEL_SWAP_FAILURES if failed else MODEL_SWAPS).labels(model).inc()
