"""Redis leases: a key held by one holder for a time, renewed while held, released only by it.

Used for a worker's per-order lock and for the jobs one worker runs for the whole engine (the
reconciler, the trigger loop): whoever holds the lease does the work; if it dies, the lease expires
and another worker takes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

_IF_MINE = "if redis.call('get', KEYS[1]) == ARGV[1] then return "
RENEW_IF_MINE = _IF_MINE + "redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
"""EVAL script: KEYS[1] key, ARGV[1] holder, ARGV[2] ttl ms → 1 if renewed (still ours), else 0."""
RELEASE_IF_MINE = _IF_MINE + "redis.call('del', KEYS[1]) end return 0"
"""EVAL script: KEYS[1] key, ARGV[1] holder → deletes the key only if the holder still owns it."""


class Lease:
    """Leadership of one engine-wide job among the workers."""

    def __init__(self, redis: aioredis.Redis, key: str, holder: str, ttl_ms: int, role: str) -> None:
        self.redis = redis
        self.key = key
        self.holder = holder
        self.ttl_ms = ttl_ms
        self.role = role
        self.held = False

    async def hold(self) -> bool:
        """Renews the lease if held, else tries to take it; whether this worker holds it now."""
        if self.held and await self._eval(RENEW_IF_MINE, self.ttl_ms):
            return True
        self.held = bool(await self.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms))
        if self.held:
            log.info(f"this worker runs the {self.role}", extra={"consumer": self.holder})
        return self.held

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self._eval(RELEASE_IF_MINE)

    async def _eval(self, script: str, *args: Any) -> Any:
        return await self.redis.eval(script, 1, self.key, self.holder, *args)


async def lead_passes(
    stopping: asyncio.Event,
    lease: Lease,
    interval_s: float,
    lead: Callable[[], Awaitable[None]],
    follow: Callable[[], Awaitable[None]] | None = None,
    interrupted: Callable[[], None] | None = None,
) -> None:
    """Runs `lead` once every `interval_s` while this worker holds `lease` (`follow` while another
    worker does), until `stopping` is set. A pass cut short by persistence or Redis is logged and
    the next one tries again; a pass that fails in any other way is logged with its traceback and
    the loop goes on too: the engine-wide job never stops while its worker runs. `interrupted` runs
    after a pass that did not finish (e.g. to reload a book the pass may have left behind)."""
    loop = asyncio.get_running_loop()
    while not stopping.is_set():
        started = loop.time()
        try:
            if await lease.hold():
                await lead()
            elif follow is not None:
                await follow()
        except (grpc.aio.AioRpcError, aioredis.RedisError) as exc:
            if interrupted is not None:
                interrupted()
            log.warning(f"{lease.role} pass interrupted", extra={"error": type(exc).__name__})
        except Exception:  # noqa: BLE001 - a failed pass must not end the loop for good
            if interrupted is not None:
                interrupted()
            log.exception(f"{lease.role} pass failed; the next pass starts afresh")
        await asyncio.sleep(max(0.0, interval_s - (loop.time() - started)))
