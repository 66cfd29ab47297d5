"""WS /api/orders/ws limits: the idle timeout (4000), the slow-consumer close (4008) with a bounded
queue, and a resubscribe with afterSeq that misses nothing. A real gateway (uvicorn, in-process) on
the real persistence service and Redis; no worker, so an order stays where the test puts it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed

from common.grpc_client import open_channel
from common.stack import free_port
from gateway.app import create_app
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.engine import engine


@dataclass
class Edge:
    url: str
    orders: orders_pb2_grpc.OrdersStub

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/orders/ws"

    async def new_order(self) -> str:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            r = await client.post(
                "/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}
            )
        assert r.status_code == 202, r.text
        order_id: str = r.json()["orderId"]
        return order_id


@asynccontextmanager
async def running_edge(make_settings: Callable[..., Any], **env: str) -> AsyncIterator[Edge]:
    settings = make_settings(**env)
    async with engine(settings, router=False, executor=False) as eng:
        port = free_port()
        app = create_app(dataclasses.replace(eng.settings, http_port=port))
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                ws="websockets-sansio",
                log_config=None,
                lifespan="on",
                ws_ping_interval=20.0,
                ws_ping_timeout=20.0,
                timeout_graceful_shutdown=5,
            )
        )
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    await asyncio.sleep(0.01)
            channel = open_channel(eng.settings.persistence_addr)
            try:
                yield Edge(f"http://127.0.0.1:{port}", orders_pb2_grpc.OrdersStub(channel))
            finally:
                await channel.close()
        finally:
            server.should_exit = True
            await task


async def close_code(
    ws: websockets.ClientConnection, within: float, answer_pings: bool = False
) -> int | None:
    """Reads until the server closes the socket; returns its close code."""
    try:
        async with asyncio.timeout(within):
            while True:
                msg = json.loads(await ws.recv())
                if answer_pings and msg.get("type") == "ping":
                    await ws.send(json.dumps({"action": "pong"}))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def still_open(ws: websockets.ClientConnection, for_s: float, answer_pings: bool = False) -> bool:
    try:
        await close_code(ws, for_s, answer_pings)
    except TimeoutError:
        return True
    return False


IDLE = {"WS_IDLE_TIMEOUT_S": "0.6", "WS_PING_INTERVAL_S": "0.2"}


async def test_a_silent_socket_without_subscriptions_is_closed_with_4000(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings, **IDLE) as edge:
        async with websockets.connect(edge.ws_url) as ws:
            assert await close_code(ws, within=5) == 4000  # server pings are not client messages


async def test_answering_pings_keeps_a_socket_open(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings, **IDLE) as edge:
        async with websockets.connect(edge.ws_url) as ws:
            assert await still_open(ws, 2.0, answer_pings=True)
            assert await close_code(ws, within=5) == 4000  # and once it stops answering: closed


async def test_following_an_unfinished_order_is_not_idle(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings, **IDLE) as edge:
        order_id = await edge.new_order()  # no worker: it stays pending
        async with websockets.connect(f"{edge.ws_url}?orderId={order_id}") as ws:
            assert await still_open(ws, 2.0)
            await ws.send(json.dumps({"action": "unsubscribe", "orderId": order_id}))
            assert await close_code(ws, within=5) == 4000


async def test_following_only_finished_orders_is_idle(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings, **IDLE) as edge:
        order_id = await edge.new_order()
        await edge.orders.AppendEvent(
            orders_pb2.NewEvent(
                order_id=order_id,
                seq=2,
                status=orders_pb2.ORDER_STATUS_FAILED,
                data_json='{"reason":"test"}',
                update=orders_pb2.OrderUpdate(failure_reason="test"),
            )
        )
        async with websockets.connect(f"{edge.ws_url}?orderId={order_id}") as ws:
            assert await close_code(ws, within=5) == 4000


def small_buffer_socket(port: int) -> socket.socket:
    """A client socket that buffers little, so a consumer that does not read backs up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@pytest.mark.slow
async def test_a_slow_consumer_is_closed_with_4008_and_resubscribing_misses_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    published = 200
    async with running_edge(make_settings, WS_QUEUE_SIZE="4", WS_SEND_TIMEOUT_S="30") as edge:
        order_id = await edge.new_order()
        port = int(edge.url.rsplit(":", 1)[1])
        sock = small_buffer_socket(port)
        async with websockets.connect(f"{edge.ws_url}?orderId={order_id}", sock=sock, max_queue=2) as ws:
            first = [json.loads(await ws.recv()) for _ in range(2)]
            assert [m["type"] for m in first] == ["subscribed", "status"] and first[1]["seq"] == 1
            # The consumer stops reading while the engine produces more than the socket's buffers
            # hold (up to 4 MB in the kernel on loopback): big events, in batches.
            pad = "x" * 30_000
            for start in range(2, published + 2, 50):
                batch = orders_pb2.AppendEventsRequest(
                    events=[
                        orders_pb2.NewEvent(
                            order_id=order_id,
                            seq=seq,
                            status=orders_pb2.ORDER_STATUS_ROUTING,
                            data_json=json.dumps({"attempt": 1, "pad": pad}),
                        )
                        for seq in range(start, min(start + 50, published + 2))
                    ]
                )
                results = (await edge.orders.AppendEvents(batch)).results
                assert all(r.code == 0 for r in results), results
            await asyncio.sleep(0.5)
            # Now it reads: what was already on the wire, then the close.
            seen: list[int] = []
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg["type"] == "status":
                            seen.append(msg["seq"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert "afterSeq" in closed.value.rcvd.reason
        assert seen == list(range(2, 2 + len(seen)))  # in order, no gap, no duplicate
        assert len(seen) < published  # the gateway dropped the backlog instead of holding it

        last = 1 + len(seen)
        rest: list[int] = []
        async with websockets.connect(f"{edge.ws_url}?orderId={order_id}&afterSeq={last}") as ws:
            async with asyncio.timeout(20):
                while not rest or rest[-1] < published + 1:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "status":
                        rest.append(msg["seq"])
        assert rest == list(range(last + 1, published + 2))
