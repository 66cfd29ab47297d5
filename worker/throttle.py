"""An optional engine-wide limit on how many orders start per window, shared by every worker.

A fixed-window counter in Redis (INCR + PEXPIRE in one round trip): simple, exact at the window
boundary's granularity, and shared across worker processes and hosts. A job over the limit waits
for the next window without holding a worker slot (the caller releases it).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis


class OrderThrottle:
    def __init__(self, redis: aioredis.Redis, prefix: str, limit: int, window_s: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_s = window_s

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def try_acquire(self) -> float:
        """0.0 when an order may start now; otherwise the seconds until the next window opens."""
        if not self.enabled:
            return 0.0
        now = time.time()
        window = int(now // self.window_s)
        key = f"{self.prefix}:throttle:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, int(self.window_s * 2000))
            count, _ = await pipe.execute()
        if int(count) <= self.limit:
            return 0.0
        return max(0.001, (window + 1) * self.window_s - now)
