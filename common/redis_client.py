"""The one way a process opens its Redis client: with connect and socket timeouts from settings, so
a Redis that stops answering fails a call (and its caller retries or reports) instead of hanging it."""

from __future__ import annotations

import redis.asyncio as aioredis

from common.settings import Settings


def open_redis(settings: Settings, health_check_interval: int = 10) -> aioredis.Redis:
    """REDIS_URL with REDIS_CONNECT_TIMEOUT_S and REDIS_SOCKET_TIMEOUT_S (at least 2 s, above the
    worker's 1 s blocking stream read)."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        health_check_interval=health_check_interval,
    )
