"""One Redis subscription per gateway process, fanned out to every WebSocket that follows an order.

Each subscriber owns a bounded queue; when it is full the subscriber is marked overflowed and its
socket is closed by its writer (a slow consumer never grows memory without bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

log = logging.getLogger(__name__)


def _cancelling() -> bool:
    """True once this task was asked to stop, even if redis-py swallowed the CancelledError."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Subscriber:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    def __init__(self, redis: aioredis.Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._subs: dict[str, set[Subscriber]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add(self, order_id: str, sub: Subscriber) -> None:
        self._subs[order_id].add(sub)

    def remove(self, order_id: str, sub: Subscriber) -> None:
        subs = self._subs.get(order_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[order_id]

    def dispatch(self, message: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(message)
        for sub in self._subs.get(message.get("orderId", ""), ()):
            sub.offer(message)

    def resync(self) -> None:
        """Asks every subscriber to re-read its orders' events from persistence: events published
        while the subscription was down (Redis restarted, connection lost) are never re-sent."""
        for order_id, subs in list(self._subs.items()):
            for sub in list(subs):
                sub.offer({"type": "_catchup", "orderId": order_id})

    async def _run(self) -> None:
        backoff = 0.1
        while not _cancelling():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if self._ready.is_set():
                    self.resync()
                self._ready.set()
                backoff = 0.1
                while not _cancelling():
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    try:
                        event = orjson.loads(msg["data"])
                    except orjson.JSONDecodeError:
                        log.warning("dropping a malformed event message")
                        continue
                    if isinstance(event, dict):
                        self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect on any Redis failure
                log.warning("event subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis 8.1: PubSub.aclose unannotated
