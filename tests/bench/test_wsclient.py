"""The benchmark's lean WebSocket client against a real server (the `websockets` library)."""

from __future__ import annotations

import asyncio

import websockets
from websockets.asyncio.server import ServerConnection

from bench.wsclient import HandshakeError, WsClient, frame, mask


async def test_text_both_ways_fragments_pings_and_the_server_close() -> None:
    pongs: list[bytes] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, str)
            if message == "bye":
                await ws.close(4008, "slow consumer")
                return
            await ws.send("echo:" + message)
            await ws.send(["part1-", "part2"])  # a fragmented message
            await ws.send("x" * 70_000)  # a 64-bit length
            pong = await ws.ping(b"p")
            await pong
            pongs.append(b"p")

    received: list[bytes] = []
    closed: list[tuple[int, str]] = []
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await WsClient.connect(
            f"ws://127.0.0.1:{port}/api/orders/ws",
            received.append,
            lambda code, reason: closed.append((code, reason)),
        )
        ws.send_text('{"é": 1}'.encode())
        ws.send_text(b"y" * 300)  # a 16-bit length
        async with asyncio.timeout(5):
            while len(pongs) < 2:
                await asyncio.sleep(0.01)
        ws.send_text(b"bye")
        async with asyncio.timeout(5):
            while not closed:
                await asyncio.sleep(0.01)
    assert received == [
        'echo:{"é": 1}'.encode(),
        b"part1-part2",
        b"x" * 70_000,
        b"echo:" + b"y" * 300,
        b"part1-part2",
        b"x" * 70_000,
    ]
    assert closed == [(4008, "slow consumer")]


async def test_a_server_that_does_not_switch_protocols_fails_the_connect() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        try:
            await WsClient.connect(f"ws://127.0.0.1:{port}/", lambda _: None, lambda *_: None, timeout=5)
        except HandshakeError as exc:
            assert "403" in str(exc)
        else:
            raise AssertionError("connected to a server that refused the upgrade")
    finally:
        server.close()
        await server.wait_closed()


def test_a_frame_is_masked_and_unmasks_to_its_payload() -> None:
    data = frame(0x1, b"hello")
    assert data[0] == 0x81 and data[1] == 0x80 | 5
    key = data[2:6]
    assert mask(data[6:], key) == b"hello"
