"""The engine-wide jobs (reconciler, trigger loop, sniper watch) run their passes through
`lead_passes`: a pass that fails in any way is logged and the next one runs; only the worker's
stopping ends the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from worker.lease import Lease, lead_passes


async def test_a_failed_pass_does_not_end_the_loop(
    redis_client: aioredis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    stopping = asyncio.Event()
    lease = Lease(redis_client, f"{redis_prefix}:job", "worker-a", 3000, "test job")
    passes: list[int] = []
    interrupted: list[int] = []

    async def lead() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise KeyError("an order the book no longer holds")  # a bug in a pass, not an outage
        if len(passes) == 2:
            raise aioredis.ConnectionError("redis went away")
        if len(passes) >= 4:
            stopping.set()

    with caplog.at_level(logging.WARNING, logger="worker.lease"):
        async with asyncio.timeout(5):
            await lead_passes(stopping, lease, 0.01, lead, interrupted=lambda: interrupted.append(1))
    assert len(passes) == 4  # the loop went on after both failures, and stopped when told
    assert len(interrupted) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "test job pass failed; the next pass starts afresh" in messages
    assert "test job pass interrupted" in messages
    failed = next(r for r in caplog.records if r.getMessage().startswith("test job pass failed"))
    assert failed.exc_info is not None  # with its traceback


async def test_a_worker_that_does_not_hold_the_lease_follows(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    stopping = asyncio.Event()
    other = Lease(redis_client, f"{redis_prefix}:job", "worker-b", 3000, "test job")
    assert await other.hold()
    lease = Lease(redis_client, f"{redis_prefix}:job", "worker-a", 3000, "test job")
    followed: list[int] = []
    led: list[int] = []

    async def lead() -> None:
        led.append(1)

    async def follow() -> None:
        followed.append(1)
        if len(followed) == 3:
            stopping.set()

    async with asyncio.timeout(5):
        await lead_passes(stopping, lease, 0.01, lead, follow=follow)
    assert len(followed) == 3 and led == []
