"""Group commit for calls that cross a process boundary: many callers, one round trip per flush.

A caller submits one item and awaits its own result. `flushers` tasks take whatever has queued up
(up to `max_batch`) and hand it to `flush`, which returns one result (or exception) per item, in
order. An idle batcher sends an item at once (no timer, no added latency); under load, items queue
while a flush is on the wire and leave together with the next one. With `linger_s`, a flusher that
takes an item first waits up to that long for the batch to fill (up to `max_batch`) before it sends
(the gateway's CREATE_BATCH_MS, the worker's BATCH_LINGER_MS) — under load only: while another
flush is on the wire, after a flush of several items, or within `linger_s` of the last item taken
(at that rate another is due within the linger). An item that finds the batcher idle is sent at
once: a lone item gains nothing by waiting (on an idle engine the linger was ~2.5 ms of an order's
25 at the median, with no batch to show for it), while under load the linger still fills the
batches (at 420 orders/s offered, 403-405 achieved with it, 392-400 without). A flush that raises
fails every item of that batch with the same error, as each would have failed alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        name: str,
        flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        max_batch: int = 500,
        flushers: int = 2,
        linger_s: float = 0.0,
    ) -> None:
        self.name = name
        self._flush = flush
        self._max_batch = max_batch
        self._flushers = flushers
        self._linger_s = linger_s
        self._full = asyncio.Event()  # a lingering flusher's batch is full
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.flushes = 0
        self.items = 0
        self._last_size = 0  # the last batch's size: more than one means load, and lingering pays
        self._on_the_wire = 0  # flushes under way: one more item now means load too
        self._last_taken = float("-inf")  # loop time a flusher last took a batch's first item

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=f"{self.name}-{i}") for i in range(self._flushers)
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.cancel()

    async def submit(self, item: T) -> R:
        """The item's own result (or its own exception) once its batch has been flushed."""
        self.start()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        if self._linger_s > 0 and self._queue.qsize() >= self._max_batch - 1:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            now = asyncio.get_running_loop().time()
            loaded = self._last_size > 1 or self._on_the_wire > 0 or now - self._last_taken < self._linger_s
            self._last_taken = now
            if self._linger_s > 0 and loaded and self._queue.qsize() < self._max_batch - 1:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger_s):
                        await self._full.wait()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._last_size = len(batch)
            live = [(item, future) for item, future in batch if not future.done()]
            if not live:
                continue
            self._on_the_wire += 1
            try:
                results = await self._flush([item for item, _ in live])
            except asyncio.CancelledError:
                for _, future in live:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every member of the batch
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._on_the_wire -= 1
            self.flushes += 1
            self.items += len(live)
            for index, (_, future) in enumerate(live):
                if future.done():
                    continue
                if index >= len(results):
                    future.set_exception(RuntimeError(f"{self.name}: no result for this item"))
                    continue
                result = results[index]
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
