from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from common import event_messages
from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2 as S
from orderengine.v1.orders_pb2_grpc import OrdersStub
from persistence_svc.models import EventRow
from persistence_svc.publisher import RedisPublisher, event_message, iso_ms
from persistence_svc.server import serve
from tests.conftest import SettingsFactory
from tests.persistence_svc.conftest import make_spec

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def subscriber(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[PubSub]:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(f"{redis_prefix}:events")
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    try:
        yield pubsub
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def receive(pubsub: PubSub, n: int, timeout: float = 2.0) -> list[str]:
    """The next `n` events' texts, however many Redis messages carry them."""
    return [text for raw in await receive_raw(pubsub, n, timeout) for _, text in event_messages.unpack(raw)]


async def receive_raw(pubsub: PubSub, n: int, timeout: float = 2.0) -> list[bytes]:
    """The Redis messages that carry the next `n` events."""
    raws: list[bytes] = []
    events = 0
    async with asyncio.timeout(timeout):
        while events < n:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if message is not None:
                raws.append(message["data"])
                events += len(list(event_messages.unpack(message["data"])))
    return raws


async def nothing_more(pubsub: PubSub) -> None:
    assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None


def expected_message(event: S.OrderEvent) -> str:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=event.at_us // 1000)
    body = {
        "type": "status",
        "orderId": event.order_id,
        "seq": event.seq,
        "status": S.OrderStatus.Name(event.status).removeprefix("ORDER_STATUS_").lower(),
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
        "data": json.loads(event.data_json),
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=False)


async def test_subscriber_receives_each_committed_event(stub: OrdersStub, subscriber: PubSub) -> None:
    created = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))
    oid = created.order.order_id
    stored = [
        await stub.AppendEvent(
            S.NewEvent(
                order_id=oid,
                seq=2,
                status=S.ORDER_STATUS_ROUTING,
                data_json='{"quotes":[{"venue":"raydium_cpmm","amountOutRaw":"5"}]}',
            )
        ),
        await stub.AppendEvent(S.NewEvent(order_id=oid, seq=3, status=S.ORDER_STATUS_BUILDING)),
    ]
    messages = await receive(subscriber, 3)
    first = json.loads(messages[0])
    assert list(first) == ["type", "orderId", "seq", "status", "at", "data"]
    assert first == {
        "type": "status",
        "orderId": oid,
        "seq": 1,
        "status": "pending",
        "at": first["at"],
        "data": {},
    }
    assert ISO_MS.match(first["at"])
    events = (await stub.ListEvents(S.ListEventsRequest(order_id=oid))).events
    assert messages == [expected_message(e) for e in events]
    assert [json.loads(m)["seq"] for m in messages] == [1, 2, 3]
    assert json.loads(messages[1])["data"] == {"quotes": [{"venue": "raydium_cpmm", "amountOutRaw": "5"}]}
    assert stored[1] == events[2]
    await nothing_more(subscriber)


async def test_batch_publishes_only_new_events(stub: OrdersStub, subscriber: PubSub) -> None:
    a = (await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))).order.order_id
    b = (await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))).order.order_id
    await receive(subscriber, 2)
    batch = S.AppendEventsRequest(
        events=[
            S.NewEvent(order_id=a, seq=2, status=S.ORDER_STATUS_ROUTING, data_json='{"attempt":1}'),
            S.NewEvent(order_id=b, seq=2, status=S.ORDER_STATUS_SUBMITTED),  # illegal: not published
            S.NewEvent(order_id=b, seq=2, status=S.ORDER_STATUS_FAILED, data_json='{"reason":"x"}'),
        ]
    )
    response = await stub.AppendEvents(batch)
    messages = await receive(subscriber, 2)
    assert messages == [
        expected_message(response.results[0].event),
        expected_message(response.results[2].event),
    ]
    await nothing_more(subscriber)
    await stub.AppendEvents(batch)  # a repeat stores nothing new and publishes nothing
    await stub.AppendEvent(batch.events[0])
    await nothing_more(subscriber)


async def test_publish_failure_does_not_fail_the_rpc(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    running = await serve(
        make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="1", REDIS_URL="redis://127.0.0.1:1/0")
    )
    channel = open_channel(f"127.0.0.1:{running.port}")
    try:
        stub = OrdersStub(channel)
        created = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))
        oid = created.order.order_id
        await stub.AppendEvent(S.NewEvent(order_id=oid, seq=2, status=S.ORDER_STATUS_ROUTING))
        got = await stub.GetOrder(S.GetOrderRequest(order_id=oid))
        assert got.last_seq == 2
    finally:
        await channel.close()
        await running.stop(0)
    assert any(r.getMessage() == "publishing committed events failed" for r in caplog.records)


async def test_publisher_sends_a_batch_as_one_message(
    redis_client: aioredis.Redis, redis_prefix: str, subscriber: PubSub
) -> None:
    publisher = RedisPublisher(redis_client, redis_prefix)
    oid = uuid.uuid4()
    at = datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)
    events = [EventRow(oid, seq, "routing", {"b": 1, "a": "é"}, at) for seq in range(2, 102)]
    assert await publisher.publish(events)
    raws = await receive_raw(subscriber, 100)
    assert len(raws) == 1 and raws[0].startswith(b"[{")  # one PUBLISH: a JSON array of 100 events
    await nothing_more(subscriber)
    messages = [text for _, text in event_messages.unpack(raws[0])]
    assert messages[0] == (
        f'{{"type":"status","orderId":"{oid}","seq":2,"status":"routing",'
        '"at":"2026-11-25T08:00:00.123Z","data":{"a":"é","b":1}}'
    )
    assert [json.loads(m)["seq"] for m in messages] == list(range(2, 102))
    assert await publisher.publish([])


def test_iso_ms() -> None:
    assert iso_ms(datetime(2026, 11, 25, 8, 0, 0, 123999, tzinfo=UTC)) == "2026-11-25T08:00:00.123Z"
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    row = EventRow(uuid.UUID(int=1), 1, "pending", {}, datetime(2026, 1, 1, tzinfo=UTC))
    assert event_message(row) == (
        '{"type":"status","orderId":"00000000-0000-0000-0000-000000000001","seq":1,"status":"pending",'
        '"at":"2026-01-01T00:00:00.000Z","data":{}}'
    )


async def test_concurrent_publishes_keep_their_order(
    redis_client: aioredis.Redis, redis_prefix: str, subscriber: PubSub
) -> None:
    publisher = RedisPublisher(redis_client, redis_prefix)
    oid = uuid.uuid4()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    calls = [
        publisher.publish([EventRow(oid, 10 * i + k, "routing", {}, at) for k in range(3)]) for i in range(50)
    ]
    assert all(await asyncio.gather(*calls))
    messages = await receive(subscriber, 150)
    assert [json.loads(m)["seq"] for m in messages] == [10 * i + k for i in range(50) for k in range(3)]
    await publisher.aclose()


async def test_resting_orders_events_also_go_on_the_resting_channel(
    stub: OrdersStub, redis_client: aioredis.Redis, redis_prefix: str, subscriber: PubSub
) -> None:
    """`{prefix}:events:resting` carries an order opening and leaving `open` (by the one-statement
    path, one event or a chain of them, by the checked path and by a cancel), never a market
    order's events; `:events` carries all."""

    async def append(*events: S.NewEvent) -> None:
        response = await stub.AppendEvents(S.AppendEventsRequest(events=events))
        assert [r.code for r in response.results] == [0] * len(events), response

    resting = redis_client.pubsub()
    await resting.subscribe(f"{redis_prefix}:events:resting")
    await resting.get_message(timeout=1.0)
    try:
        expires = int(datetime.now(UTC).timestamp() * 1_000_000) + 3_600_000_000
        limit = make_spec(order_type=S.ORDER_TYPE_LIMIT, trigger_price=150_000_000, expires_at_us=expires)
        market = (await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()))).order.order_id
        a = (await stub.CreateOrder(S.CreateOrderRequest(spec=limit))).order.order_id
        b = (await stub.CreateOrder(S.CreateOrderRequest(spec=limit))).order.order_id
        c = (await stub.CreateOrder(S.CreateOrderRequest(spec=limit))).order.order_id
        # one event per order: the one-statement path
        await append(
            S.NewEvent(order_id=market, seq=2, status=S.ORDER_STATUS_ROUTING),
            S.NewEvent(order_id=a, seq=2, status=S.ORDER_STATUS_OPEN),
            S.NewEvent(order_id=b, seq=2, status=S.ORDER_STATUS_OPEN),
            S.NewEvent(order_id=c, seq=2, status=S.ORDER_STATUS_OPEN),
        )
        # `failed` always takes the checked path (c fails while resting: it leaves open)
        failed = S.OrderUpdate(failure_reason="test")
        await append(S.NewEvent(order_id=c, seq=3, status=S.ORDER_STATUS_FAILED, update=failed))
        # two events of one order in a batch: a chain, still the one-statement path (a triggers:
        # open → routing → building; only the first leaves open)
        await append(
            S.NewEvent(order_id=a, seq=3, status=S.ORDER_STATUS_ROUTING),
            S.NewEvent(order_id=a, seq=4, status=S.ORDER_STATUS_BUILDING),
            S.NewEvent(order_id=market, seq=3, status=S.ORDER_STATUS_BUILDING),
        )
        await stub.CancelOrder(S.CancelOrderRequest(order_id=b))
        seen = [json.loads(m) for m in await receive(resting, 6)]
        assert [(m["orderId"], m["seq"], m["status"]) for m in seen] == [
            (a, 2, "open"),
            (b, 2, "open"),
            (c, 2, "open"),
            (c, 3, "failed"),
            (a, 3, "routing"),
            (b, 3, "cancelled"),
        ]
        await nothing_more(resting)
        assert len(await receive(subscriber, 13)) == 13  # every event, on the main channel
    finally:
        await resting.unsubscribe()
        await resting.aclose()
