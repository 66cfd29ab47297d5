"""Per-order Redis commands of every order in flight, sent together: one pipeline per flush.

Each order takes its lock, acknowledges its job and releases its lock: three round trips per order
when sent alone. The batcher (common.batching.MicroBatcher) queues them and sends whatever has
accumulated as one pipeline (no MULTI: the commands of different orders are independent; within a
pipeline they run in order), so under load a round trip carries many orders. Each caller gets its
own command's result or error; a transport failure fails every command of that flush with the same
error, as it would have failed each alone.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from common.batching import MicroBatcher


class RedisBatcher:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 1000, linger_s: float = 0.0) -> None:
        self._redis = redis
        self._batcher: MicroBatcher[tuple[Any, ...], Any] = MicroBatcher(
            "redis-batcher", self._flush, max_batch=max_batch, flushers=1, linger_s=linger_s
        )

    async def command(self, *args: Any) -> Any:
        """Runs one Redis command (e.g. "SET", key, value, "NX", "PX", ttl) in the next pipeline."""
        return await self._batcher.submit(args)

    async def stop(self) -> None:
        await self._batcher.stop()

    async def _flush(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for args in batch:
            pipe.execute_command(*args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
