"""One Redis subscription per gateway process, feeding every order's events to its feed.

A message carries one event or a batch of them (`common.event_messages`); each event is parsed and
serialized once here, and `gateway.fanout.Feeds` hands it to every socket that follows its order and
keeps it for the catch-up of sockets that join later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from common import event_messages
from common.redis_client import follow_channel
from gateway.fanout import Event, Feeds

log = logging.getLogger(__name__)


class EventHub:
    def __init__(self, redis: aioredis.Redis, channel: str, feeds: Feeds) -> None:
        self._redis = redis
        self._channel = channel
        self.feeds = feeds
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

    def dispatch(self, data: bytes | str) -> None:
        """One Redis message: its events, in order, to the listeners and the feeds."""
        try:
            items = list(event_messages.unpack(data))
        except ValueError:
            log.warning("dropping a malformed event message")
            return
        for doc, text in items:
            for listener in self.listeners:
                listener(doc)
            order_id = doc.get("orderId")
            event = Event.from_doc(doc, text)
            if event is not None and isinstance(order_id, str):
                self.feeds.on_event(order_id, event)

    def resync(self) -> None:
        """Every followed order is read again from persistence: events published while the
        subscription was down (Redis restarted, connection lost) are never re-sent."""
        self.feeds.resync()

    async def _run(self) -> None:
        await follow_channel(self._redis, self._channel, self._subscribed, self.dispatch)

    def _subscribed(self) -> None:
        if self._ready.is_set():
            self.resync()  # a resubscription: what was published meanwhile was never delivered
        self._ready.set()
