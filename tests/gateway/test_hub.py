"""The event hub: a lost Redis subscription comes back, and every socket's orders are re-read then
(events published while it was down are never re-sent by Redis)."""

from __future__ import annotations

import asyncio
import json
import uuid

import redis.asyncio as aioredis

from gateway.hub import EventHub, Subscriber
from tests.conftest import REDIS_URL


async def test_a_lost_subscription_resyncs_every_subscriber(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    name = f"hubtest-{uuid.uuid4().hex[:8]}"
    redis = aioredis.Redis.from_url(REDIS_URL, client_name=name)
    hub = EventHub(redis, f"{redis_prefix}:events")
    await hub.start()
    try:
        order_id = str(uuid.uuid4())
        sub = Subscriber(100)
        hub.add(order_id, sub)
        channel = f"{redis_prefix}:events"
        await redis_client.publish(channel, json.dumps({"type": "status", "orderId": order_id, "seq": 2}))
        assert (await asyncio.wait_for(sub.queue.get(), 2))["seq"] == 2

        # cut this hub's subscription (only this one: the Redis is shared)
        clients = await redis_client.client_list()
        (victim,) = [c for c in clients if c.get("name") == name and c.get("sub") == "1"]
        await redis_client.client_kill_filter(_id=victim["id"])
        message = await asyncio.wait_for(sub.queue.get(), 5)
        assert message == {"type": "_catchup", "orderId": order_id}  # re-read from persistence
        # and live events flow again
        async with asyncio.timeout(5):
            while True:
                live_event = {"type": "status", "orderId": order_id, "seq": 3}
                await redis_client.publish(channel, json.dumps(live_event))
                try:
                    live = await asyncio.wait_for(sub.queue.get(), 0.2)
                    break
                except TimeoutError:
                    continue
        assert live["seq"] == 3
    finally:
        await hub.stop()
        await redis.aclose()
