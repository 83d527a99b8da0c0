"""Adaptive batching for one model: a queue, a future per request, one predict call per batch.

Two ways to run a predict, chosen by the runtime (its `inline` attribute), not by measuring:

- Inline runtimes (ONNX Runtime: ~5 us for 1 row, ~100 us for 64) are called on the event loop
  itself. While the model is idle, a request is predicted at once, inside `submit`: no future,
  no loop pass (those two passes were ~8 us of a one-row request's ~60 us, in process). Under
  load a request is queued and, when no flush is pending, a flush is scheduled with
  `loop.call_soon`: every request that arrives in the same event-loop pass is predicted in one
  call. Idle is told without a clock: the first request of a pass goes at once unless an
  earlier pass showed concurrency (requests queued behind an at-once one), which lasts until a
  flush finds a request alone. A burst after a quiet spell costs one extra one-row call; steady
  load is batched. Handing such a call to a thread costs more than the call: a queue put, a
  futex wake-up, GIL hand-overs and a loop wake-up (py-spy showed the thread's `_worker` and
  `Session.run` at ~14% of a worker's samples, with the event loop's own C code on top). A batch
  is cut at `max_rows`; a larger request goes alone to the thread, never split, so the loop is
  never blocked for long. The model is never busy when a flush runs, so `max_wait` adds nothing
  here: a wait would leave the loop idle while every queued client waits.
- Other runtimes (scikit-learn, ~0.5 ms a call, whatever a test plugs in) run on the model's
  one executor thread: a request that finds the model idle is predicted at once; while a
  predict runs, arrivals queue, and the next predict takes every queued request up to
  `max_rows` rows. Only when several requests are already queued and still short of
  `max_rows` does it wait up to `max_wait` for more. `timeout` bounds these waits.

Results are split back per request exactly. Validation happens before a request is queued, so
one bad row never fails the others; a runtime error fails the requests of its batch only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tabserve.types import Prediction

__all__ = ["Batcher", "split"]

Observer = Callable[[int, float], None]  # (rows in the predict call, oldest request's wait)


def split(prediction: Prediction, bounds: list[tuple[int, int]]) -> list[Prediction]:
    """Cut one batch's prediction back into each request's rows."""
    labels, proba = prediction
    return [Prediction(labels[a:b], None if proba is None else proba[a:b]) for a, b in bounds]


class Batcher:
    """Coalesces concurrent `submit` calls into few `predict` calls (on the loop or one thread)."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], Prediction],
        *,
        inline: bool = False,
        max_rows: int = 64,
        max_wait: float = 0.0,
        observe: Observer | None = None,
        name: str = "model",
        timeout: float | None = None,
    ) -> None:
        self.predict = predict
        self.inline = inline
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.observe = observe
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"tabserve-predict-{name}")
        # Queued requests: (rows, future). `_since` is when the oldest of them was queued.
        self._queue: deque[tuple[np.ndarray, asyncio.Future[Prediction]]] = deque()
        self._since = 0.0
        self._busy = False  # the thread path: a predict call is running or about to
        self._scheduled = False  # the inline path: a flush is scheduled
        self._at_once_this_pass = False  # the inline path: this pass predicted one at once
        self._concurrent = False  # the inline path: requests queued behind an at-once one
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the next predict call."""
        return len(self._queue)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Cached: on Python 3.11 get_running_loop() makes a getpid() system call per call.
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def submit(self, rows: np.ndarray) -> Prediction:
        """Predict these rows: at once when idle, else batched (in the next loop pass, inline)."""
        if self.inline and len(rows) <= self.max_rows:
            loop = self._running_loop()
            if not self._queue and not self._at_once_this_pass and not self._concurrent:
                return self._at_once(rows, loop)
            future: asyncio.Future[Prediction] = loop.create_future()
            if not self._queue:
                self._since = time.perf_counter()
            self._queue.append((rows, future))
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush)
            # Bounded without a timer: the flush runs in the next pass and predicts on the loop.
            return await future
        if self.inline:  # a large request: alone, on the thread, never split
            return await self._alone(rows, self._running_loop())
        return await self._threaded(rows)

    # -- inline: on the event loop ---------------------------------------------------------

    def _at_once(self, rows: np.ndarray, loop: asyncio.AbstractEventLoop) -> Prediction:
        """Predict an idle model's request now; the next pass learns whether others followed."""
        self._at_once_this_pass = True
        loop.call_soon(self._end_pass)
        prediction = self.predict(rows)
        if self.observe is not None:
            self.observe(len(rows), 0.0)
        return prediction

    def _end_pass(self) -> None:
        self._at_once_this_pass = False
        if self._queue:  # others arrived in the same pass: batch until a flush finds one alone
            self._concurrent = True

    def _flush(self) -> None:
        """Predict every queued request (up to max_rows rows per call) on the loop, now."""
        self._scheduled = False
        queue = self._queue
        if len(queue) == 1:
            self._concurrent = False
        while queue:
            started = time.perf_counter()
            since = self._since
            batch, total = self._take()
            if queue:
                self._since = started  # the rest were queued no later than now
            self._run(batch, total, started - since)

    def _run(
        self,
        batch: list[tuple[np.ndarray, asyncio.Future[Prediction]]],
        total: int,
        waited: float,
    ) -> None:
        if len(batch) == 1:
            rows, future = batch[0]
            if future.done():  # cancelled (the client went away)
                return
            try:
                prediction = self.predict(rows)
            except Exception as error:
                future.set_exception(error)
                return
            if self.observe is not None:
                self.observe(total, waited)
            future.set_result(prediction)
            return
        live = [item for item in batch if not item[1].done()]
        if not live:
            return
        try:
            prediction = self.predict(
                np.concatenate([rows for rows, _ in live]) if len(live) > 1 else live[0][0]
            )
        except Exception as error:  # the runtime's fault: every request of the batch sees it
            for _, future in live:
                future.set_exception(error)
            return
        if self.observe is not None:
            self.observe(sum(len(rows) for rows, _ in live), waited)
        labels, proba = prediction
        offset = 0
        for rows, future in live:
            end = offset + len(rows)
            future.set_result(
                Prediction(labels[offset:end], None if proba is None else proba[offset:end])
            )
            offset = end

    def _take(self) -> tuple[list[tuple[np.ndarray, asyncio.Future[Prediction]]], int]:
        """The next batch: queued requests up to max_rows rows (an oversized one alone)."""
        queue = self._queue
        first = queue.popleft()
        batch = [first]
        total = len(first[0])
        limit = self.max_rows
        while queue and total + len(queue[0][0]) <= limit:
            item = queue.popleft()
            batch.append(item)
            total += len(item[0])
        return batch, total

    # -- the executor thread ---------------------------------------------------------------

    async def _alone(self, rows: np.ndarray, loop: asyncio.AbstractEventLoop) -> Prediction:
        async with asyncio.timeout(self.timeout):
            result = await loop.run_in_executor(self._executor, self.predict, rows)
        if self.observe is not None:
            self.observe(len(rows), 0.0)
        return result

    async def _threaded(self, rows: np.ndarray) -> Prediction:
        loop = self._running_loop()
        if not self._busy and not self._queue:
            self._busy = True
            try:
                return await self._alone(rows, loop)
            finally:
                self._busy = False
                if self._queue:
                    self._start(loop)
        future: asyncio.Future[Prediction] = loop.create_future()
        if not self._queue:
            self._since = time.perf_counter()
        self._queue.append((rows, future))
        if not self._busy:
            self._start(loop)
        async with asyncio.timeout(self.timeout):
            return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._busy = True
        loop.create_task(self._drain(loop))

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._queue:
                if (
                    self.max_wait > 0
                    and len(self._queue) > 1
                    and sum(len(rows) for rows, _ in self._queue) < self.max_rows
                ):
                    await asyncio.sleep(self.max_wait)
                started = time.perf_counter()
                since = self._since
                batch, _ = self._take()
                if self._queue:
                    self._since = started
                live = [item for item in batch if not item[1].done()]  # drop timed-out ones
                if not live:
                    continue
                rows = np.concatenate([r for r, _ in live]) if len(live) > 1 else live[0][0]
                try:
                    prediction = await loop.run_in_executor(self._executor, self.predict, rows)
                except Exception as error:  # every request of the batch sees it
                    for _, future in live:
                        if not future.done():
                            future.set_exception(error)
                    continue
                if self.observe is not None:
                    self.observe(len(rows), started - since)
                bounds = []
                offset = 0
                for r, _ in live:
                    bounds.append((offset, offset + len(r)))
                    offset += len(r)
                for (_, future), part in zip(live, split(prediction, bounds), strict=True):
                    if not future.done():
                        future.set_result(part)
        finally:
            self._busy = False

    def close(self) -> None:
        """Stop the executor thread (after the last request)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
