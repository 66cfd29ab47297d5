"""The one way a process opens its Redis client: with connect and socket timeouts from settings, so
a Redis that stops answering fails a call (and its caller retries or reports) instead of hanging it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from common.settings import Settings

log = logging.getLogger(__name__)


def open_redis(settings: Settings, health_check_interval: int = 10) -> aioredis.Redis:
    """REDIS_URL with REDIS_CONNECT_TIMEOUT_S and REDIS_SOCKET_TIMEOUT_S (at least 2 s, above the
    worker's 1 s blocking stream read)."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        health_check_interval=health_check_interval,
    )


def cancelling() -> bool:
    """True once the current task was asked to stop, even if redis-py swallowed the CancelledError."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def follow_channel(
    redis: aioredis.Redis,
    channel: str,
    on_subscribed: Callable[[], None],
    on_message: Callable[[bytes | str], None],
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Subscribes to `channel` and hands each message's data to `on_message` until cancelled. A
    lost subscription (Redis restarted, connection dropped) is made again after a backoff;
    `on_subscribed` runs after every subscription — whatever was published while there was none is
    never delivered, so it is where a follower reads again what it may have missed."""
    backoff = 0.1
    while not cancelling():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            on_subscribed()
            backoff = 0.1
            while not cancelling():
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None:
                    on_message(msg["data"])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - resubscribe on any Redis failure
            on_lost()
            log.warning("subscription lost; resubscribing", extra={"channel": channel}, exc_info=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis 8.1: PubSub.aclose unannotated
