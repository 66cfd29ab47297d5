"""The engine-wide order throttle, on the real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from worker.throttle import OrderThrottle


async def test_limit_per_window_is_shared_and_reopens(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # two throttles = two worker processes sharing one limit
    a = OrderThrottle(redis_client, redis_prefix, limit=3, window_s=1.0)
    b = OrderThrottle(redis_client, redis_prefix, limit=3, window_s=1.0)
    for _ in range(3):  # a window boundary may fall between the calls: then try again
        waits = [await t.try_acquire() for t in (a, b, a, b)]
        if waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0:
            break
        await asyncio.sleep(max(max(waits), 0.05))
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 1.0
    await asyncio.sleep(waits[3])
    assert await a.try_acquire() == 0.0


async def test_zero_means_no_limit(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    t = OrderThrottle(redis_client, redis_prefix, limit=0)
    assert not t.enabled
    assert [await t.try_acquire() for _ in range(100)] == [0.0] * 100
    assert [k async for k in redis_client.scan_iter(match=f"{redis_prefix}*")] == []
