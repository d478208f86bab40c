"""Micro-batching: concurrent requests' inputs scored together, answered one by one.

    batcher = MicroBatcher(score, max_batch_size=32, max_wait_ms=5)
    results = await batcher.submit([input1, input2])   # in a request handler

``submit`` puts a request's inputs in a queue and waits for their results. One task
per model takes the first waiting input, then gathers more for at most
``max_wait_ms`` (or until ``max_batch_size`` inputs), and runs ``score`` on the whole
batch in a worker thread, off the event loop. Each request gets its own results back.
When the batch fails because of a bad input, it is halved until the bad input stands
alone: that input's request gets the error, its batch-mates their answers
(``isolate``). ``max_batch_size=1`` turns batching off (each input scored alone, in
arrival order). ``close`` answers what is queued, then stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from launchml.errors import InputError


@dataclass
class _Item:
    value: Any
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


def isolate(score: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]:
    """``score(items)``; when it raises an InputError, halves until each bad item stands
    alone and returns that item's exception in its place (never raised here)."""
    try:
        out = score(items)
    except InputError as e:
        if len(items) == 1:
            return [e]
        mid = len(items) // 2
        return isolate(score, items[:mid]) + isolate(score, items[mid:])
    if len(out) != len(items):
        raise RuntimeError(f"scored {len(items)} inputs but got {len(out)} results")
    return out


class MicroBatcher:
    """Gathers inputs from concurrent ``submit`` calls into batches for ``score``.

    ``score(values) -> results`` (one per value, in order) runs in one worker thread;
    ``on_batch(size, seconds)`` is called after each batch (metrics)."""

    def __init__(self, score: Callable[[list[Any]], list[Any]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.score, self.on_batch = score, on_batch
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="launchml-batch")
        self._closing = False

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.get_loop() is not loop or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())

    async def submit(self, values: list[Any], *, return_exceptions: bool = False
                     ) -> list[Any]:
        """The results for ``values``; the first bad input's error is raised (or, with
        ``return_exceptions``, each bad input's error is in its place)."""
        if self._closing:
            raise RuntimeError("this model version is shutting down")
        self._start()
        loop = asyncio.get_running_loop()
        items = [_Item(v, loop.create_future()) for v in values]
        for item in items:
            self._queue.put_nowait(item)  # type: ignore[union-attr]
        return list(await asyncio.gather(*(i.future for i in items),
                                         return_exceptions=return_exceptions))

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + self.max_wait
            stop = False
            while len(batch) < self.max_batch_size:
                try:  # what is already queued joins at once; then wait until the deadline
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._score(batch)
            if stop:
                return

    async def _score(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._pool, isolate, self.score, [i.value for i in batch])
        except Exception as e:  # not an input's fault: every request of the batch fails
            results = [e] * len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - start)
        for item, result in zip(batch, results, strict=True):
            if item.future.done():  # the request was cancelled (client gone)
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def close(self) -> None:
        """Answer everything queued, then stop the task and the worker thread."""
        self._closing = True
        if self._task is not None and not self._task.done() and self._queue is not None:
            self._queue.put_nowait(None)
            await self._task
        self._pool.shutdown(wait=False)
