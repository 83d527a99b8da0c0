"""Model lifecycle inside one running worker: hot swap on promote, shadow traffic, admin reload.

`Poller` resolves every unpinned reference (`iris`, `iris@production`) against the registry
every `registry_poll` seconds, so a promote from any host is seen. When a reference names
another version, the worker fetches it (hashes verified), loads and self-tests it in a
thread, then swaps it in on the event loop; in-flight requests finish on the old version.
A version that fails is not swapped in and not retried until the reference moves again (or
an admin reload asks). Each worker runs its own poller: all end on the same version. An
admin reload asked of one worker is carried out by all of them (reload.py).

`ShadowTraffic` copies each live request (rows already validated) to a candidate version
after the live answer is known, through a bounded queue whose consumers run the candidate
off the event loop; when it lags, copies are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tabserve import logging as tlog
from tabserve.artifacts.refs import parse_ref
from tabserve.errors import ArtifactError, UnauthorizedError, UsageError
from tabserve.serving import metrics
from tabserve.serving.inference import ModelService, check, input_signature, load_runtime
from tabserve.serving.reload import CHECK_S, ReloadBoard
from tabserve.serving.responses import encode, send_response
from tabserve.serving.validation import Schema
from tabserve.settings import Settings
from tabserve.types import Manifest, Prediction, Runtime

if TYPE_CHECKING:
    from tabserve.artifacts.registry import Registry
    from tabserve.serving.app import ServingState

__all__ = ["ADMIN_RELOAD", "Poller", "ShadowTraffic", "admin_reload", "disagreements", "is_pinned"]

log = tlog.get_logger("tabserve.lifecycle")

SHADOW_QUEUE = 1024  # copied requests waiting for the candidate before new ones are dropped
ADMIN_RELOAD = "/admin/reload"
RELOAD_WAIT_MAX_S = 30.0  # an admin reload waits at most this long for the other workers
SHADOW_CONSUMERS = 8  # concurrent copies in flight, so the candidate's batcher can coalesce


def is_pinned(ref: str) -> bool:
    """True for `NAME:VERSION`, which never moves; `NAME` and `NAME@ALIAS` are polled."""
    return parse_ref(ref).version is not None


class Poller:
    """Polls the registry and hot-swaps each tracked service whose reference moved."""

    def __init__(
        self,
        settings: Settings,
        tracked: list[tuple[str, ModelService]],
        open_registry: Callable[[], Registry],
        *,
        owned: bool = True,
        board: ReloadBoard | None = None,
    ) -> None:
        self.settings = settings
        self.board = board  # shared with the server's other workers (reload.py)
        self.tracked = [(ref, s) for ref, s in tracked if not is_pinned(ref)]
        self._open = open_registry
        self._owned = owned  # close the registry on stop (not one the caller handed in)
        self._registry: Registry | None = None
        self._failed: dict[str, int] = {}  # ref -> the version that failed (not retried)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    def start(self) -> None:
        """Poll in the background every registry_poll seconds (nothing to do when all pinned).

        With a board, also poll at once when another worker was asked for an admin reload.
        """
        if self.tracked and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling; a swap being prepared is abandoned (its runtime never served)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._registry is not None and self._owned:
            await asyncio.to_thread(self._registry.close)
            self._registry = None

    async def _run(self) -> None:
        period = self.settings.registry_poll
        due = time.monotonic() + period
        while True:
            timeout = max(0.0, due - time.monotonic())
            if self.board is not None:
                timeout = min(timeout, CHECK_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            woken = self._wake.is_set()
            self._wake.clear()
            board = self.board
            try:
                token = None if board is None else board.changed()
                if board is not None and token is not None:  # another worker was asked
                    board.acknowledge(token, await self.poll(retry_failed=True))
                elif woken or time.monotonic() >= due:
                    await self.poll()
                else:
                    continue
            except Exception as error:  # never let the poller die: the old versions serve on
                tlog.log_error("registry poll failed", error)
            due = time.monotonic() + period

    async def reload_everywhere(
        self, timeout: float
    ) -> tuple[list[dict[str, Any]], list[Any], int]:
        """Admin reload: poll now here and in every worker.

        Returns this worker's report, each worker's entry (`{"pid": ..., "models": [...]}`)
        and how many workers had not polled within `timeout` seconds (they still will).
        Without a board (`serve --dev`, one process) this worker is all there is.
        """
        if not self.tracked:  # every reference pinned, in every worker: nothing can move
            return [], [], 0
        board = self.board
        if board is None:
            report = await self.poll(retry_failed=True)
            return report, [{"pid": os.getpid(), "models": report}], 0
        token = board.request()
        report = await self.poll(retry_failed=True)
        board.acknowledge(token, report)
        workers = self.settings.workers
        acks = await board.wait(token, workers, timeout)
        return report, acks, max(0, workers - len(acks))

    async def poll(self, *, retry_failed: bool = False) -> list[dict[str, Any]]:
        """Resolve every tracked reference now and swap where it moved; one entry per reference."""
        async with self._lock:
            if retry_failed:
                self._failed.clear()
            targets = await asyncio.to_thread(self._resolve)
            report = []
            for ref, service in self.tracked:
                target = targets.get(ref)
                entry: dict[str, Any] = {"ref": ref, "name": service.name}
                if isinstance(target, int) and str(target) != service.version:
                    if self._failed.get(ref) == target:
                        entry["failed"] = target
                    else:
                        await self._swap(ref, service, target, entry)
                entry["version"] = service.version
                report.append(entry)
            return report

    def _resolve(self) -> dict[str, int | None]:
        """In a thread: the version each reference names now (None when the registry fails)."""
        if self._registry is None:
            try:
                self._registry = self._open()
            except Exception as error:
                self._note_registry_error(error)
                return {}
        targets: dict[str, int | None] = {}
        for ref, _ in self.tracked:
            try:
                targets[ref] = self._registry.resolve(ref).version
            except Exception as error:
                self._note_registry_error(error)
                targets[ref] = None
        return targets

    def _note_registry_error(self, error: Exception) -> None:
        # Logged when it changes, not every poll: a registry down for an hour is one line.
        text = f"{type(error).__name__}: {error}"
        if text != self._last_error:
            self._last_error = text
            log.warning("registry unreachable; the loaded versions keep serving", error=text)

    async def _swap(
        self, ref: str, service: ModelService, version: int, entry: dict[str, Any]
    ) -> None:
        started = time.perf_counter()
        old = service.version
        try:
            manifest, runtime = await asyncio.to_thread(self._prepare, service.name, version)
        except Exception as error:
            self._failed[ref] = version
            metrics.count_swap(service.name, failed=True)
            tlog.log_error(
                "new version not swapped in; the old one keeps serving",
                error,
                model=service.name,
                version=version,
                serving=old,
            )
            entry["failed"] = version
            entry["error"] = str(error)
            return
        if input_signature(manifest) != input_signature(service.manifest):
            log.warning(
                "the new version takes other inputs: requests already validated for the old "
                "one answer 503 (retry)",
                model=service.name,
                version=version,
            )
        service.swap(manifest, runtime, tested=True)
        self._failed.pop(ref, None)
        seconds = time.perf_counter() - started
        metrics.count_swap(service.name)
        metrics.set_model_ready(service.name, old, False)
        metrics.set_model_loaded(service.name, manifest.version, seconds)
        log.info(
            "model swapped", model=service.name, old=old, version=version, seconds=round(seconds, 3)
        )
        entry["swapped"] = {"from": old, "to": service.version}

    def _prepare(self, name: str, version: int) -> tuple[Manifest, Runtime]:
        """In a thread: fetch (hashes verified), load and self-test one version."""
        registry = self._registry
        if registry is None:  # closed by stop() while this thread was starting
            raise ArtifactError("the registry was closed: the worker is stopping")
        manifest, path = registry.fetch(f"{name}:{version}")
        settings = self.settings
        if manifest.runtime.kind == "sklearn":
            from tabserve.artifacts import store

            store.check_sklearn_version(
                manifest, allow_version_mismatch=settings.allow_version_mismatch
            )
        runtime = load_runtime(
            path, manifest, threads=settings.intra_op_threads(), settings=settings
        )
        try:
            check(runtime, Schema(manifest, settings.max_batch_rows))
        except BaseException:
            runtime.close()
            raise
        return manifest, runtime

    def wake(self) -> None:
        """Poll now instead of at the next period."""
        self._wake.set()


class ShadowTraffic:
    """Copies each live request of `live` to `candidate`, after the live answer, never blocking it."""

    def __init__(self, live: ModelService, candidate: ModelService) -> None:
        if input_signature(live.manifest) != input_signature(candidate.manifest):
            raise UsageError(
                f"--shadow {candidate.manifest.ref} takes other inputs than {live.manifest.ref}: "
                "a shadow must accept the rows the live version validated"
            )
        self.live = live
        self.candidate = candidate
        self.queue: asyncio.Queue[tuple[np.ndarray, Prediction, str, str | None]] = asyncio.Queue(
            SHADOW_QUEUE
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Attach to the live service and start the consumers."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume()) for _ in range(SHADOW_CONSUMERS)]
        self.live.shadow = self.offer

    async def stop(self) -> None:
        """Detach; copies still queued are dropped (the live answers were sent long ago)."""
        self.live.shadow = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def offer(
        self,
        rows: np.ndarray,
        prediction: Prediction,
        manifest: Manifest,
        request_id: str,
        client_request_id: str | None,
    ) -> None:
        """Queue a copy (called in the live request; the consumers run after it yields)."""
        try:
            self.queue.put_nowait((rows, prediction, request_id, client_request_id))
        except asyncio.QueueFull:
            metrics.count_shadow_dropped(self.candidate.name, self.candidate.version)

    async def _consume(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._one(*item)
            except Exception as error:  # the live answers are unaffected; say so once per copy
                tlog.log_error("shadow record failed", error, model=self.candidate.name)

    async def _one(
        self,
        rows: np.ndarray,
        live: Prediction,
        request_id: str,
        client_request_id: str | None,
    ) -> None:
        candidate = self.candidate
        started = time.perf_counter()
        try:
            prediction, served = await candidate.run(rows)
        except Exception:
            metrics.count_shadow_error(candidate.name, candidate.version)
            return
        latency = time.perf_counter() - started
        metrics.observe_shadow_latency(candidate.name, served.version, latency)
        metrics.count_shadow(
            candidate.name, served.version, len(rows), disagreements(live, prediction)
        )
        waiting = self.live.sink.record(
            served.manifest,
            request_id,
            client_request_id,
            rows,
            prediction,
            latency,
            role="shadow",
        )
        if waiting is not None:
            await waiting


def disagreements(live: Prediction, shadow: Prediction) -> int:
    """Rows whose labels differ (regression: values not equal to 1e-9 relative)."""
    a, b = np.asarray(live.labels), np.asarray(shadow.labels)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        same = np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-9, atol=0.0)
    else:
        same = a.astype(object) == b.astype(object)
    return int(len(a) - int(np.count_nonzero(same)))


def _bearer(scope: Any) -> bytes:
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


async def admin_reload(state: ServingState, scope: Any, receive: Any, send: Any) -> None:
    """`POST /admin/reload` (only with TABSERVE_ADMIN_TOKEN): every worker polls the registry now.

    200 once each worker has polled: `models` is the answering worker's report, `workers` each
    worker's. 504 when some had not within --request-timeout (capped at 30 s): they poll on.
    """
    settings = state.settings
    token = settings.admin_token
    expected = b"" if token is None else token.get_secret_value().encode()
    if not expected or not hmac.compare_digest(_bearer(scope), expected):
        raise UnauthorizedError("admin reload needs `Authorization: Bearer <TABSERVE_ADMIN_TOKEN>`")
    poller = state.poller
    timeout = min(settings.request_timeout, RELOAD_WAIT_MAX_S)
    report, workers, missing = (
        ([], [], 0) if poller is None else await poller.reload_everywhere(timeout)
    )
    body: dict[str, Any] = {"models": report, "workers": workers}
    if missing:
        body["error"] = (
            f"{len(workers)} of {len(workers) + missing} workers polled the registry within "
            f"{timeout:g} s; the others poll on their own every --registry-poll: retry to check"
        )
        await send_response(send, 504, encode(body))
        return
    await send_response(send, 200, encode(body))
