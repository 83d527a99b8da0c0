"""The adaptive batcher: idle requests go at once, concurrent ones share predict calls, split exactly."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from tabserve.serving.batching import Batcher
from tabserve.types import Prediction


class Recorder:
    """A runtime that remembers each call's row count and answers row i with label = its value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, rows: np.ndarray) -> Prediction:
        self.calls.append(len(rows))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return Prediction(rows[:, 0].copy(), np.column_stack([rows[:, 0], -rows[:, 0]]))


def rows(*values: float) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.float64)


def test_an_idle_request_is_predicted_at_once_off_the_loop() -> None:
    runtime = Recorder(delay=0.01)
    batcher = Batcher(runtime, max_rows=64, max_wait=1.0)

    async def main() -> Prediction:
        return await batcher.submit(rows(1, 2))

    started = time.perf_counter()
    labels, proba = asyncio.run(main())
    assert time.perf_counter() - started < 0.5  # max_wait is never spent on an idle model
    assert labels.tolist() == [1, 2] and proba is not None and proba.shape == (2, 2)
    assert runtime.calls == [2]
    assert threading.main_thread().name not in runtime.threads  # slow predicts run off the loop
    batcher.close()


def test_concurrent_requests_are_coalesced_and_split_back_exactly() -> None:
    runtime = Recorder(delay=0.02)
    batcher = Batcher(runtime, max_rows=5)

    async def main() -> list[Prediction]:
        requests = [rows(10 * i, 10 * i + 1) for i in range(6)]  # 2 rows each
        return await asyncio.gather(*(batcher.submit(r) for r in requests))

    results = asyncio.run(main())
    for i, (labels, proba) in enumerate(results):
        assert labels.tolist() == [10 * i, 10 * i + 1]
        assert proba is not None and proba[:, 1].tolist() == [-10 * i, -10 * i - 1]
    assert runtime.calls[0] == 2  # the first request found the model idle
    assert len(runtime.calls) < 6 and max(runtime.calls) <= 5  # batched, cut at max_rows
    assert sum(runtime.calls) == 12
    batcher.close()


def test_a_request_over_max_rows_goes_alone_never_split() -> None:
    runtime = Recorder(delay=0.02)
    batcher = Batcher(runtime, max_rows=4)

    async def main() -> list[Prediction]:
        return await asyncio.gather(
            batcher.submit(rows(1)), batcher.submit(rows(*range(10))), batcher.submit(rows(2))
        )

    results = asyncio.run(main())
    assert results[1].labels.tolist() == list(range(10))
    assert 10 in runtime.calls
    batcher.close()


def test_a_failing_predict_fails_only_its_batch() -> None:
    calls = 0

    def flaky(batch: np.ndarray) -> Prediction:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return Prediction(batch[:, 0], None)

    batcher = Batcher(flaky, max_rows=64)

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await batcher.submit(rows(1))
        assert (await batcher.submit(rows(3))).labels.tolist() == [3]

    asyncio.run(main())
    batcher.close()


def test_an_idle_inline_request_is_answered_inside_submit_without_a_loop_pass() -> None:
    runtime = Recorder()
    batcher = Batcher(runtime, inline=True, max_rows=4)

    async def main() -> None:
        submit = batcher.submit(rows(7))
        with pytest.raises(StopIteration) as done:
            submit.send(None)  # the coroutine finishes on its first step: it never suspends
        assert done.value.value.labels.tolist() == [7]

    asyncio.run(main())
    assert runtime.calls == [1]
    assert runtime.threads == {threading.main_thread().name}
    batcher.close()


def test_an_inline_runtime_predicts_on_the_loop_one_call_per_loop_pass() -> None:
    runtime = Recorder()
    batcher = Batcher(runtime, inline=True, max_rows=4)

    async def burst(start: int) -> list[Prediction]:
        return await asyncio.gather(
            *(batcher.submit(rows(i, i + 0.5)) for i in range(start, start + 5))
        )

    async def main() -> tuple[list[Prediction], list[Prediction], Prediction, Prediction]:
        first = await burst(0)
        second = await burst(10)
        last_in_queue = await batcher.submit(rows(20))
        idle = await batcher.submit(rows(30))
        return first, second, last_in_queue, idle

    first, second, last_in_queue, idle = asyncio.run(main())
    for start, predictions in ((0, first), (10, second)):
        for i, prediction in enumerate(predictions, start):
            assert prediction.labels.tolist() == [i, i + 0.5]
            assert prediction.proba is not None
            assert prediction.proba[:, 1].tolist() == [-i, -i - 0.5]
    assert last_in_queue.labels.tolist() == [20] and idle.labels.tolist() == [30]
    assert runtime.calls == [
        2,  # the first request of a burst to an idle model: at once (it cannot know of the rest)
        4,  # the other four, arriving in the same pass: one call per 4 rows, never split
        4,
        4,  # the next burst, the model now known busy: all five coalesced
        4,
        2,
        1,  # a request alone in its flush: the model is idle again...
        1,  # ...so the next one goes at once
    ]
    assert runtime.threads == {threading.main_thread().name}
    batcher.close()


def test_an_inline_runtime_sends_a_request_over_max_rows_to_the_thread() -> None:
    runtime = Recorder()
    batcher = Batcher(runtime, inline=True, max_rows=4)

    async def main() -> list[Prediction]:
        return await asyncio.gather(batcher.submit(rows(*range(9))), batcher.submit(rows(1)))

    big, small = asyncio.run(main())
    assert big.labels.tolist() == list(range(9)) and small.labels.tolist() == [1]
    assert sorted(runtime.calls) == [1, 9]
    assert len(runtime.threads) == 2  # the small one on the loop, the big one off it
    batcher.close()


def test_an_inline_batch_failure_fails_its_requests_only() -> None:
    calls = 0

    def flaky(batch: np.ndarray) -> Prediction:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")
        return Prediction(batch[:, 0], None)

    batcher = Batcher(flaky, inline=True, max_rows=64)

    async def main() -> None:
        # The first goes at once; the other two share the second call, which fails.
        first = await asyncio.gather(
            *(batcher.submit(rows(i)) for i in (1, 2, 3)), return_exceptions=True
        )
        assert isinstance(first[0], Prediction) and first[0].labels.tolist() == [1]
        assert all(isinstance(r, RuntimeError) for r in first[1:])
        assert (await batcher.submit(rows(4))).labels.tolist() == [4]

    asyncio.run(main())
    batcher.close()


def test_inline_batches_report_their_size_and_queue_wait() -> None:
    seen: list[tuple[int, float]] = []
    batcher = Batcher(
        Recorder(), inline=True, max_rows=64, observe=lambda n, w: seen.append((n, w))
    )

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(rows(i, i)) for i in range(3)))

    asyncio.run(main())
    assert [n for n, _ in seen] == [2, 4]  # the first at once, with no wait; then the rest
    assert seen[0][1] == 0.0 and 0 <= seen[1][1] < 1.0
    batcher.close()


def test_waiting_past_the_timeout_raises() -> None:
    runtime = Recorder(delay=0.3)
    batcher = Batcher(runtime, max_rows=64, timeout=0.05)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await batcher.submit(rows(1))

    asyncio.run(main())
    batcher.close()
