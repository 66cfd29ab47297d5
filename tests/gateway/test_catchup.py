"""WebSocket catch-up at scale: many sockets joining one order share one persistence read, and a
read that fails (persistence down) ends in delivery after a retry or in an explicit error — never in
silence. A real gateway (uvicorn, in-process) on the real persistence service (its real gRPC
server, stopped and started again) and Redis; calls are counted by the server's own metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
import websockets
from prometheus_client import REGISTRY

from common.grpc_client import open_channel
from common.redis_names import events_channel
from common.settings import Settings
from common.stack import free_port
from gateway import wsproto
from gateway.app import create_app
from gateway.guard import owner_id
from gateway.views import event_json
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from persistence_svc.server import serve as serve_persistence
from tests.conftest import SettingsFactory
from tests.engine import Engine, engine
from tests.persistence_svc.conftest import make_spec


def persistence_reads() -> float:
    """GetOrder calls the persistence server in this process has answered, whatever their code."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "orderengine_grpc_server_handled":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("grpc_method") == "GetOrder":
                total += sample.value
    return total


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[str]:
    """A gateway on `settings`, served as `python -m gateway` serves it (its frame writer: live
    events go out as prebuilt frames; test_ws.py covers plain websockets-sansio); yields its URL."""
    port = free_port()
    app = create_app(dataclasses.replace(settings, http_port=port))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, ws=wsproto.PROTOCOL, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}/api/orders/ws"
    finally:
        server.should_exit = True
        await task


async def order_with_events(eng: Engine, statuses: list[orders_pb2.OrderStatus.ValueType]) -> str:
    """An order whose events (after seq 1, pending) have the given statuses, written directly."""
    channel = open_channel(eng.settings.persistence_addr)
    try:
        stub = orders_pb2_grpc.OrdersStub(channel)
        order_id = (await stub.CreateOrder(orders_pb2.CreateOrderRequest(spec=make_spec()))).order.order_id
        for seq, status in enumerate(statuses, start=2):
            await stub.AppendEvent(orders_pb2.NewEvent(order_id=order_id, seq=seq, status=status))
        return order_id
    finally:
        await channel.close()


ROUTING, BUILDING = orders_pb2.ORDER_STATUS_ROUTING, orders_pb2.ORDER_STATUS_BUILDING


async def follow(ws: websockets.ClientConnection, order_id: str, until_seq: int) -> list[dict[str, Any]]:
    """Messages about `order_id` until the status with `until_seq`, or an error about it."""
    got: list[dict[str, Any]] = []
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("orderId") != order_id:
            continue
        got.append(msg)
        if msg["type"] == "error" or (msg["type"] == "status" and msg["seq"] >= until_seq):
            return got


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] == "status"]


async def test_200_sockets_joining_one_order_cause_one_persistence_read(
    make_settings: SettingsFactory,
) -> None:
    async with engine(make_settings(), router=False, executor=False) as eng:
        # written before the gateway starts: it never saw these events live, so it must read them
        order_id = await order_with_events(eng, [ROUTING, BUILDING])
        async with gateway(eng.settings) as url:
            before = persistence_reads()
            sockets = await asyncio.gather(
                *(websockets.connect(f"{url}?orderId={order_id}&afterSeq=0") for _ in range(200))
            )
            try:
                async with asyncio.timeout(30):
                    results = await asyncio.gather(*(follow(ws, order_id, 3) for ws in sockets))
                for messages in results:
                    assert messages[0] == {"type": "subscribed", "orderId": order_id, "lastSeq": 3}
                    assert seqs(messages) == [1, 2, 3]
                assert persistence_reads() - before == 1

                # a live event reaches all 200, with no read
                channel = open_channel(eng.settings.persistence_addr)
                try:
                    await orders_pb2_grpc.OrdersStub(channel).AppendEvent(
                        orders_pb2.NewEvent(order_id=order_id, seq=4, status=orders_pb2.ORDER_STATUS_FAILED)
                    )
                finally:
                    await channel.close()
                async with asyncio.timeout(30):
                    live = await asyncio.gather(*(follow(ws, order_id, 4) for ws in sockets))
                assert all(seqs(messages) == [4] for messages in live)
                assert persistence_reads() - before == 1
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))


async def test_with_api_keys_200_sockets_of_one_key_cost_one_ownership_check_and_one_read(
    make_settings: SettingsFactory,
) -> None:
    async with engine(make_settings(API_KEYS="key-a,key-b"), router=False, executor=False) as eng:
        channel = open_channel(eng.settings.persistence_addr)
        try:
            stub = orders_pb2_grpc.OrdersStub(channel)
            request = orders_pb2.CreateOrderRequest(spec=make_spec(), owner=owner_id("key-a"))
            order_id = (await stub.CreateOrder(request)).order.order_id
        finally:
            await channel.close()
        async with gateway(eng.settings) as url:
            before = persistence_reads()
            sockets = await asyncio.gather(
                *(websockets.connect(f"{url}?apiKey=key-a&orderId={order_id}") for _ in range(200))
            )
            try:
                async with asyncio.timeout(30):
                    results = await asyncio.gather(*(follow(ws, order_id, 1) for ws in sockets))
                assert all(seqs(messages) == [1] for messages in results)
                assert persistence_reads() - before == 2  # the key's ownership, then the history
                async with websockets.connect(f"{url}?apiKey=key-b&orderId={order_id}") as other:
                    async with asyncio.timeout(10):
                        (error,) = await follow(other, order_id, 1)
                assert error["code"] == "unknown_order"  # another key's order is not there for it
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))


async def test_an_event_beyond_a_gap_waits_for_the_read_that_fills_it(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    async with engine(make_settings(OUTBOX_RELAY_INTERVAL_MS="0"), router=False, executor=False) as eng:
        order_id = await order_with_events(eng, [])
        async with gateway(eng.settings) as url:
            async with websockets.connect(f"{url}?orderId={order_id}") as ws:
                async with asyncio.timeout(10):
                    assert seqs(await follow(ws, order_id, 1)) == [1]
                # seqs 2 and 3 are committed by a persistence process that cannot reach Redis:
                # never published (and the relay is off), like a publish lost on the way
                silent = await serve_persistence(
                    dataclasses.replace(
                        eng.settings,
                        persistence_addr="127.0.0.1:0",
                        redis_url=f"redis://127.0.0.1:{free_port()}/0",
                    )
                )
                channel = open_channel(f"127.0.0.1:{silent.port}")
                try:
                    stub = orders_pb2_grpc.OrdersStub(channel)
                    for seq, status in ((2, ROUTING), (3, BUILDING)):
                        await stub.AppendEvent(orders_pb2.NewEvent(order_id=order_id, seq=seq, status=status))
                    after_two = orders_pb2.ListEventsRequest(order_id=order_id, after_seq=2)
                    (third,) = (await stub.ListEvents(after_two)).events
                finally:
                    await channel.close()
                    await silent.stop(0)
                before = persistence_reads()
                # only seq 3 reaches Redis: the gateway must not deliver it before seq 2
                await redis_client.publish(
                    events_channel(eng.settings.redis_prefix), orjson.dumps(event_json(third))
                )
                async with asyncio.timeout(10):
                    assert seqs(await follow(ws, order_id, 3)) == [2, 3]
                assert persistence_reads() - before == 1  # the read that filled the gap


@asynccontextmanager
async def persistence_down(eng: Engine) -> AsyncIterator[None]:
    """Stops the engine's persistence server; starts a new one on the same port on leaving."""
    await eng.persistence.stop(0)
    try:
        yield
    finally:
        eng.persistence = await serve_persistence(eng.settings)
        eng.started.append(eng.persistence)


async def test_a_catchup_read_that_fails_is_retried_until_persistence_is_back(
    make_settings: SettingsFactory,
) -> None:
    async with engine(make_settings(WS_CATCHUP_RETRY_S="20"), router=False, executor=False) as eng:
        order_id = await order_with_events(eng, [ROUTING])
        async with gateway(eng.settings) as url:
            sockets = []
            try:
                async with persistence_down(eng):
                    for _ in range(20):
                        ws = await websockets.connect(url)
                        await ws.send(json.dumps({"action": "subscribe", "orderId": order_id}))
                        sockets.append(ws)
                    followers = [asyncio.create_task(follow(ws, order_id, 2)) for ws in sockets]
                    await asyncio.sleep(1.5)  # the reads fail meanwhile, and nobody is answered
                    assert not any(f.done() for f in followers)
                async with asyncio.timeout(30):
                    results = await asyncio.gather(*followers)
                for messages in results:
                    assert [m["type"] for m in messages] == ["subscribed", "status", "status"]
                    assert seqs(messages) == [1, 2]
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_catchup_read_that_keeps_failing_ends_in_an_error_and_resubscribing_works(
    make_settings: SettingsFactory,
) -> None:
    async with engine(make_settings(WS_CATCHUP_RETRY_S="1"), router=False, executor=False) as eng:
        order_id = await order_with_events(eng, [ROUTING, BUILDING])
        async with gateway(eng.settings) as url:
            async with websockets.connect(url) as ws:
                async with persistence_down(eng):
                    await ws.send(json.dumps({"action": "subscribe", "orderId": order_id, "afterSeq": 1}))
                    async with asyncio.timeout(20):
                        (error,) = await follow(ws, order_id, 3)
                assert error["type"] == "error" and error["code"] == "catchup_failed"
                assert error["afterSeq"] == 1 and "resubscribe" in error["message"]
                # the socket is still open, and the subscription is gone: subscribe again (as a
                # client does, with a pause: the gateway's channel reconnects with its own backoff)
                async with asyncio.timeout(30):
                    while True:
                        await ws.send(json.dumps({"action": "subscribe", "orderId": order_id, "afterSeq": 1}))
                        messages = await follow(ws, order_id, 3)
                        if messages[0]["type"] == "subscribed":
                            break
                        assert messages == [{**error, "message": messages[0]["message"]}]
                        await asyncio.sleep(0.5)
                assert seqs(messages) == [2, 3]


async def test_an_unknown_order_is_answered_with_an_error(make_settings: SettingsFactory) -> None:
    async with engine(make_settings(), router=False, executor=False) as eng:
        async with gateway(eng.settings) as url:
            unknown = "00000000-0000-4000-8000-000000000001"
            async with websockets.connect(f"{url}?orderId={unknown}") as ws:
                async with asyncio.timeout(10):
                    (error,) = await follow(ws, unknown, 1)
    assert error["code"] == "unknown_order" and error["field"] == "orderId"


@pytest.mark.parametrize(
    ("env", "code"),
    [({"WS_MAX_SOCKETS": "3"}, 1013), ({"WS_MAX_SOCKETS_PER_CLIENT": "3"}, 4429)],
)
async def test_sockets_over_a_limit_are_closed_with_a_code_to_act_on(
    make_settings: SettingsFactory, env: dict[str, str], code: int
) -> None:
    async with engine(make_settings(**env), router=False, executor=False) as eng:
        async with gateway(eng.settings) as url:
            kept = [await websockets.connect(url) for _ in range(3)]
            try:
                async with websockets.connect(url) as extra:
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        async with asyncio.timeout(5):
                            await extra.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == code
                assert "reconnect later" in closed.value.rcvd.reason
                await kept[0].close()
                await asyncio.sleep(0.3)
                async with websockets.connect(url) as again:  # a place is free again: it stays open
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await again.recv()
            finally:
                await asyncio.gather(*(ws.close() for ws in kept))


async def test_subscriptions_per_socket_are_limited(make_settings: SettingsFactory) -> None:
    async with engine(make_settings(WS_MAX_SUBSCRIPTIONS="2"), router=False, executor=False) as eng:
        orders = [await order_with_events(eng, []) for _ in range(3)]
        async with gateway(eng.settings) as url:
            async with websockets.connect(url) as ws:
                for order_id in orders:
                    await ws.send(json.dumps({"action": "subscribe", "orderId": order_id}))
                async with asyncio.timeout(10):
                    (error,) = await follow(ws, orders[2], 1)
                    assert error["code"] == "too_many_subscriptions" and "at most 2" in error["message"]
                    await ws.send(json.dumps({"action": "unsubscribe", "orderId": orders[0]}))
                    await ws.send(json.dumps({"action": "subscribe", "orderId": orders[2]}))
                    assert seqs(await follow(ws, orders[2], 1)) == [1]
