"""Publishing committed events to Redis, as the exact WebSocket message the gateway forwards.

Two parts, which the outbox relay (outbox.py) reuses: `event_message` (an event → the message
text) and `RedisPublisher.publish_messages` (many messages → one PUBLISH per batch: a batch of
events travels as one Redis message, a JSON array, `common.event_messages`). A publish
is best effort: the event is already committed, so a failure is logged and never fails the RPC.
Every event also has a row in `event_outbox`, written with it; once a pipeline succeeded the
publisher hands the events' keys to `on_published`, which deletes those rows. What a failure (or a
crash) leaves there is published by the relay, and subscribers drop the repeats by seq.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from common import event_messages
from common.redis_names import events_channel, resting_events_channel
from common.timefmt import iso_ms
from persistence_svc.models import EventRow

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0


def event_message(event: EventRow) -> str:
    """The WebSocket status message for a stored event, as compact JSON, fields in the documented
    order. Built by hand: the id, seq, status and time need no escaping, and `data_json` is
    already compact JSON."""
    return (
        f'{{"type":"status","orderId":"{event.order_id}","seq":{event.seq},"status":"{event.status}",'
        f'"at":"{iso_ms(event.at)}","data":{event.data_json}}}'
    )


EventKey = tuple[uuid.UUID, int]  # (order_id, seq)
_Waiting = tuple[Sequence[str], Sequence[str], Sequence[EventKey], "asyncio.Future[bool]"]


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[EventRow], resting: Sequence[bool] = ()) -> bool: ...


class RedisPublisher:
    """PUBLISHes events on `{prefix}:events`, and those of resting orders on
    `{prefix}:events:resting` too (the worker's books need nothing else).

    Calls that arrive while a pipeline is on the wire are sent together in the next one (FIFO, so
    the order of publish calls is kept): one round trip and one Redis message (JSON array) for many
    RPCs' events under load, and each caller still returns only once its own events were handed to
    Redis (or that failed)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        timeout_s: float = PUBLISH_TIMEOUT_S,
        on_published: Callable[[list[EventKey]], None] | None = None,
    ) -> None:
        self.client = client
        self.channel = events_channel(prefix)
        self.resting_channel = resting_events_channel(prefix)
        self.timeout_s = timeout_s
        self.on_published = on_published
        self._waiting: list[
            tuple[Sequence[str], Sequence[str], Sequence[EventKey], asyncio.Future[bool]]
        ] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, events: Sequence[EventRow], resting: Sequence[bool] = ()) -> bool:
        """True when every event was handed to Redis; False (logged) otherwise. Never raises.
        `resting[i]`: event i also goes on the resting channel."""
        if not events:
            return True
        messages = [event_message(e) for e in events]
        return await self.publish_messages(
            messages,
            [(e.order_id, e.seq) for e in events],
            [m for m, r in zip(messages, resting, strict=False) if r],
        )

    async def publish_messages(
        self, messages: Sequence[str], keys: Sequence[EventKey] = (), resting: Sequence[str] = ()
    ) -> bool:
        """Publishes `messages` (and `resting`, a subset, on the resting channel too); on success
        the `keys` (of outbox rows) go to `on_published`."""
        if not messages:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((messages, resting, keys, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="event-publisher")
        # shield: a caller that goes away (deadline) must not cancel other callers' pipeline
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            ok = False
            try:
                ok = await self._send(
                    [m for messages, _, _, _ in batch for m in messages],
                    [m for _, resting, _, _ in batch for m in resting],
                )
            finally:  # even when cancelled: no caller may wait forever
                for _, _, _, future in batch:
                    if not future.done():
                        future.set_result(ok)
            if ok and self.on_published is not None:
                keys = [k for _, _, batch_keys, _ in batch for k in batch_keys]
                if keys:
                    self.on_published(keys)

    async def _send(self, messages: list[str], resting: list[str]) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                packed = [(self.channel, m) for m in event_messages.pack(messages)]
                packed += [(self.resting_channel, m) for m in event_messages.pack(resting)] if resting else []
                if len(packed) == 1:
                    await self.client.publish(*packed[0])
                else:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for channel, message in packed:
                            pipe.publish(channel, message)
                        await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "publishing committed events failed",
                extra={"events": len(messages), "channel": self.channel, "error": type(exc).__name__},
            )
            return False
        except Exception:  # noqa: BLE001 - publishing never fails an RPC
            log.exception("publishing committed events failed", extra={"events": len(messages)})
            return False
        return True

    async def aclose(self) -> None:
        """Waits for the pipeline in flight, if any (call once no RPC can publish any more)."""
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=self.timeout_s * 2)
