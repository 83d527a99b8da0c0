"""Adaptive batching for one model: a queue, a future per request, predict off the event loop.

A request that arrives while the model is idle is predicted at once (no added wait, so c=1
latency is the model's own). While a predict runs, arrivals queue; when it ends, the next
predict takes every queued request up to `max_rows` rows (a request larger than that goes
alone, never split). Only when several requests are already queued and still short of
`max_rows` does it wait up to `max_wait` for more. Results are split back per request exactly.
Validation happens before a request is queued, so one bad row never fails the others.

Where the predict runs: on the model's one executor thread, so a slow predict (scikit-learn,
~0.5 ms a call, or a big request) never blocks the event loop. A model whose predict calls
measure under `inline_budget` (ONNX Runtime: ~5-100 us for up to 64 rows) is called on the
loop itself for batches up to `max_rows`: handing such a call to a thread costs more than
the call (a queue put, a wake-up, a GIL hand-over and a loop wake-up: ~25 us measured) and
halved the served requests per second. Requests over `max_rows` always go to the thread.
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

SMALL = 4  # calls of up to this many rows give the cost estimate

Observer = Callable[[int, float], None]  # (rows in the predict call, oldest request's wait)


def split(prediction: Prediction, bounds: list[tuple[int, int]]) -> list[Prediction]:
    """Cut one batch's prediction back into each request's rows."""
    labels, proba = prediction
    return [Prediction(labels[a:b], None if proba is None else proba[a:b]) for a, b in bounds]


class _Pending:
    __slots__ = ("future", "queued_at", "rows")

    def __init__(self, rows: np.ndarray, future: asyncio.Future[Prediction]) -> None:
        self.rows = rows
        self.future = future
        self.queued_at = time.perf_counter()


class Batcher:
    """Coalesces concurrent `submit` calls into few `predict` calls on one executor thread."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], Prediction],
        *,
        max_rows: int = 64,
        max_wait: float = 0.0,
        observe: Observer | None = None,
        name: str = "model",
        inline_budget: float = 0.0002,
        timeout: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.predict = predict
        self.inline_budget = inline_budget
        self._cost: float | None = None  # moving average of small predict calls, CPU seconds
        self._calls = 0
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.observe = observe
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"tabserve-predict-{name}")
        self._queue: deque[_Pending] = deque()
        self._busy = False

    @property
    def queued(self) -> int:
        """Requests waiting for the next predict call."""
        return len(self._queue)

    async def submit(self, rows: np.ndarray) -> Prediction:
        """Predict these rows, alone when the model is idle, else in the next batch."""
        if not self._busy and not self._queue and self._inline(len(rows)):
            result = self._timed(rows)
            if self.observe is not None:
                self.observe(len(rows), 0.0)
            return result
        # Only now: on Python 3.11 get_running_loop() makes a getpid() system call.
        loop = asyncio.get_running_loop()
        if not self._busy and not self._queue:
            self._busy = True
            try:
                async with asyncio.timeout(self.timeout):
                    result = await loop.run_in_executor(self._executor, self._timed, rows)
            finally:
                self._busy = False
                if self._queue:
                    self._start(loop)
            if self.observe is not None:
                self.observe(len(rows), 0.0)
            return result
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append(_Pending(rows, future))
        if not self._busy:
            self._start(loop)
        # Only awaits are bounded: an inline predict has nothing to time out.
        async with asyncio.timeout(self.timeout):
            return await future

    def _inline(self, rows: int) -> bool:
        cost = self._cost
        return cost is not None and cost < self.inline_budget and rows <= self.max_rows

    def _timed(self, rows: np.ndarray) -> Prediction:
        """Predict; keep the moving average cost of small calls (1 in 8, up to SMALL rows)."""
        self._calls += 1
        cost = self._cost
        if len(rows) > (SMALL if cost is not None else self.max_rows) or (
            cost is not None and self._calls & 7
        ):
            return self.predict(rows)
        # CPU time of this thread, and small calls only: on a loaded machine preemptions,
        # waits for the GIL and the larger batches that formed meanwhile pushed a wall-clock
        # average of every call past the budget, which sent predicts to the thread, whose GIL
        # hand-overs pushed it further (seen under load with py-spy).
        started = time.thread_time()
        result = self.predict(rows)
        spent = time.thread_time() - started
        self._cost = spent if cost is None else 0.9 * cost + 0.1 * spent
        return result

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._busy = True
        loop.create_task(self._drain())

    def _take(self) -> list[_Pending]:
        """The next batch: queued requests up to max_rows rows (an oversized one alone)."""
        queue = self._queue
        batch = [queue.popleft()]
        total = len(batch[0].rows)
        while queue and total + len(queue[0].rows) <= self.max_rows:
            item = queue.popleft()
            batch.append(item)
            total += len(item.rows)
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait > 0 and len(self._queue) > 1:
                    rows = sum(len(p.rows) for p in self._queue)
                    if rows < self.max_rows:
                        await asyncio.sleep(self.max_wait)
                batch = [p for p in self._take() if not p.future.done()]  # drop timed-out ones
                if not batch:
                    continue
                await self._run(loop, batch)
        finally:
            self._busy = False

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
        try:
            if self._inline(len(rows)):
                prediction = self._timed(rows)
            else:
                prediction = await loop.run_in_executor(self._executor, self._timed, rows)
        except Exception as error:  # the runtime's fault: every request of the batch sees it
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(error)
            return
        if self.observe is not None:
            self.observe(len(rows), started - batch[0].queued_at)
        bounds = []
        offset = 0
        for p in batch:
            bounds.append((offset, offset + len(p.rows)))
            offset += len(p.rows)
        for p, part in zip(batch, split(prediction, bounds), strict=True):
            if not p.future.done():
                p.future.set_result(part)

    def close(self) -> None:
        """Stop the executor thread (after the last request)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
