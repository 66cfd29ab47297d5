"""The outbox: an event committed in Postgres reaches Redis even when it was never published by the
process that committed it (it died, or Redis was unreachable then)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from common.grpc_client import open_channel
from common.stack import free_port
from orderengine.v1 import orders_pb2 as S
from orderengine.v1.orders_pb2_grpc import OrdersStub
from persistence_svc.server import serve
from tests.conftest import SettingsFactory
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_publisher import nothing_more, receive


@pytest.fixture
async def events(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[PubSub]:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(f"{redis_prefix}:events")
    await pubsub.get_message(timeout=1.0)
    try:
        yield pubsub
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


def outbox_rows(database_url: str) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT order_id::text, seq FROM event_outbox ORDER BY order_id, seq").fetchall()
    return [(r[0], r[1]) for r in rows]


async def write_some(stub: OrdersStub) -> list[tuple[str, int]]:
    """Three orders, two of them with more events; returns every (order_id, seq) written."""
    written: list[tuple[str, int]] = []
    for n in range(3):
        order = (await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))).order
        written.append((order.order_id, 1))
        if n:
            routing = S.NewEvent(
                order_id=order.order_id,
                seq=2,
                status=S.ORDER_STATUS_ROUTING,
                data_json='{"attempt":1}',
                update=S.OrderUpdate(attempts=1),
            )
            building = S.NewEvent(order_id=order.order_id, seq=3, status=S.ORDER_STATUS_BUILDING)
            result = await stub.AppendEvents(S.AppendEventsRequest(events=[routing, building]))
            assert [r.code for r in result.results] == [0, 0]
            written += [(order.order_id, 2), (order.order_id, 3)]
    return sorted(written)


async def test_committed_but_unpublished_events_are_relayed_in_order(
    make_settings: SettingsFactory, database_url: str, events: PubSub
) -> None:
    # A persistence process whose Redis is unreachable: every commit succeeds, every publish fails.
    unpublished = await serve(
        make_settings(
            PERSISTENCE_ADDR="127.0.0.1:0",
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            OUTBOX_RELAY_INTERVAL_MS="0",
        )
    )
    channel = open_channel(f"127.0.0.1:{unpublished.port}")
    try:
        written = await write_some(OrdersStub(channel))
    finally:
        await channel.close()
        await unpublished.stop(0)  # it goes away with its events committed and never published
    await nothing_more(events)
    assert outbox_rows(database_url) == written

    # The next process relays them at start, each order's events in seq order.
    relaying = await serve(
        make_settings(
            PERSISTENCE_ADDR="127.0.0.1:0",
            OUTBOX_RELAY_INTERVAL_MS="100",
            OUTBOX_RELAY_AGE_MS="100",
        )
    )
    try:
        messages = [json.loads(m) for m in await receive(events, len(written), timeout=5.0)]
        assert sorted((m["orderId"], m["seq"]) for m in messages) == written
        for order_id in {o for o, _ in written}:
            seqs = [m["seq"] for m in messages if m["orderId"] == order_id]
            assert seqs == sorted(seqs)
        assert all(m["type"] == "status" and m["status"] for m in messages)
        await nothing_more(events)
        assert outbox_rows(database_url) == []
        assert relaying.outbox.relayed == len(written)
    finally:
        await relaying.stop(0)


async def test_published_events_leave_the_outbox_and_are_not_relayed_again(
    make_settings: SettingsFactory, database_url: str, events: PubSub
) -> None:
    running = await serve(
        make_settings(
            PERSISTENCE_ADDR="127.0.0.1:0",
            OUTBOX_RELAY_INTERVAL_MS="50",
            OUTBOX_RELAY_AGE_MS="300",
        )
    )
    channel = open_channel(f"127.0.0.1:{running.port}")
    try:
        written = await write_some(OrdersStub(channel))
        assert len(await receive(events, len(written))) == len(written)
        async with asyncio.timeout(5):
            while outbox_rows(database_url):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # several relay rounds past the age
        await nothing_more(events)
        assert running.outbox.relayed == 0
    finally:
        await channel.close()
        await running.stop(0)
