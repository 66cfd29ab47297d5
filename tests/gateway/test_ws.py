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


class RawConsumer:
    """A WebSocket client on a plain socket that buffers little and reads only when told to, so a
    consumer that does not read backs up the gateway's transport for real."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload); server frames are never masked."""
        b0, b1 = self._need(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._need(2), "big")
        elif length == 127:
            length = int.from_bytes(self._need(8), "big")
        return b0 & 0x0F, self._need(length)

    def read_until_close(self) -> tuple[list[dict[str, Any]], int, str]:
        messages = []
        while True:
            opcode, payload = self.read()
            if opcode == 1:
                messages.append(json.loads(payload))
            elif opcode == 8:
                return messages, int.from_bytes(payload[:2], "big"), payload[2:].decode()


@pytest.mark.slow
async def test_a_slow_consumer_is_closed_with_4008_and_resubscribing_misses_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    published = 500  # 15 MB: more than the kernel's socket buffers on loopback hold
    async with running_edge(make_settings, WS_QUEUE_SIZE="4", WS_SEND_TIMEOUT_S="30") as edge:
        order_id = await edge.new_order()
        port = int(edge.url.rsplit(":", 1)[1])
        consumer = await asyncio.to_thread(RawConsumer, port, f"/api/orders/ws?orderId={order_id}")
        try:
            # The consumer does not read while the engine produces more than the socket's buffers
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
            messages, code, reason = await asyncio.to_thread(consumer.read_until_close)
        finally:
            consumer.sock.close()
        assert [m["type"] for m in messages[:2]] == ["subscribed", "status"]
        seen = [m["seq"] for m in messages if m["type"] == "status"]
        assert code == 4008 and "afterSeq" in reason
        assert seen == list(range(1, 1 + len(seen)))  # in order, no gap, no duplicate
        assert len(seen) < published  # the gateway dropped the backlog instead of holding it
        seen = seen[1:]

        last = 1 + len(seen)
        rest: list[int] = []
        async with websockets.connect(f"{edge.ws_url}?orderId={order_id}&afterSeq={last}") as ws:
            async with asyncio.timeout(20):
                while not rest or rest[-1] < published + 1:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "status":
                        rest.append(msg["seq"])
        assert rest == list(range(last + 1, published + 2))
