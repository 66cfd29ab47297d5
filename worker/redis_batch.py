"""Per-order Redis commands of every order in flight, sent together: one pipeline per flush.

Each order takes its lock, acknowledges its job and releases its lock: three round trips per order
when sent alone. The batcher queues them and sends whatever has accumulated as one pipeline (no
MULTI: the commands of different orders are independent), so under load a round trip carries many
orders. Each caller gets its own command's result or error; a transport failure fails every
command of that flush with the same error, as it would have failed each alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis


class RedisBatcher:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000) -> None:
        self._redis = redis
        self._queue: asyncio.Queue[tuple[tuple[Any, ...], asyncio.Future[Any]]] = asyncio.Queue()
        self._max_batch = max_batch
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0
        self.commands = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def command(self, *args: Any) -> Any:
        """Runs one Redis command (e.g. "SET", key, value, "NX", "PX", ttl) in the next pipeline."""
        self.start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((args, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            pipe = self._redis.pipeline(transaction=False)
            for args, _ in batch:
                pipe.execute_command(*args)
            try:
                results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - the transport failed: every member failed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.flushes += 1
            self.commands += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
