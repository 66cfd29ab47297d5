"""The event hub: a lost Redis subscription comes back, and every followed order is read again then
(events published while it was down are never re-sent); a message may carry a batch of events."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import redis.asyncio as aioredis

from gateway.fanout import Event, Feeds, Subscription
from gateway.hub import EventHub
from tests.conftest import REDIS_URL


class Inbox:
    """A socket stand-in that records what its feeds queue to it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def push(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(json.loads(message["text"]))

    def push_catchup(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.push(message)

    def subscription_ended(self, sub: Subscription) -> None:
        pass

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)


def status(order_id: str, seq: int) -> dict[str, Any]:
    return {"type": "status", "orderId": order_id, "seq": seq, "status": "routing", "data": {}}


class History:
    """The persistence read, answered from a list the test controls, counting the reads."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.reads = 0

    async def read(self, order_id: str) -> list[Event]:
        self.reads += 1
        docs = self.events.get(order_id, [])
        return [e for d in docs if (e := Event.from_doc(d, json.dumps(d))) is not None]


async def test_a_lost_subscription_reads_every_followed_order_again(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"hubtest-{uuid.uuid4().hex[:8]}"
    redis = aioredis.Redis.from_url(REDIS_URL, client_name=name)
    history = History()
    hub = EventHub(redis, f"{redis_prefix}:events", Feeds(history.read, 10, 5.0))
    await hub.start()
    try:
        order_id = str(uuid.uuid4())
        history.events[order_id] = [status(order_id, 1)]
        inbox = Inbox()
        hub.feeds.subscribe(order_id, inbox, 0)
        assert (await inbox.next())["type"] == "subscribed"
        assert (await inbox.next())["seq"] == 1
        channel = f"{redis_prefix}:events"
        await redis_client.publish(channel, json.dumps(status(order_id, 2)))
        assert (await inbox.next())["seq"] == 2
        reads = history.reads

        # cut this hub's subscription (only this one: the Redis is shared); seq 3 is committed
        # and published while it is down, so only a read can bring it
        history.events[order_id] += [status(order_id, 2), status(order_id, 3)]
        clients = await redis_client.client_list()
        (victim,) = [c for c in clients if c.get("name") == name and c.get("sub") == "1"]
        await redis_client.client_kill_filter(_id=victim["id"])
        assert (await inbox.next(5))["seq"] == 3  # read from persistence
        assert history.reads == reads + 1
        # and live events flow again: one message carrying a batch
        async with asyncio.timeout(5):
            while True:
                batch = [status(order_id, 4), status(order_id, 5)]
                await redis_client.publish(channel, json.dumps(batch))
                try:
                    live = await inbox.next(0.2)
                    break
                except TimeoutError:
                    continue
        assert live["seq"] == 4
        assert (await inbox.next())["seq"] == 5
    finally:
        await hub.stop()
        await redis.aclose()
