"""A lean HTTP/1.1 keep-alive client connection on an asyncio protocol, for the benchmark's load
generator: one request in flight per connection, a prebuilt request, responses framed by
Content-Length (what the gateway sends for its JSON answers), the answer handed to a callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

MAX_HEADER_BYTES = 64 * 1024


def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of a keep-alive JSON POST (built once, sent for every order)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConn(asyncio.Protocol):
    """One keep-alive connection. `send(request, on_response)` while it is idle; `on_response(status,
    body)` is called once per request (status 0 with an empty body: the connection was lost first).
    `on_idle(conn)` is called when it can take the next request; `on_lost(conn)` once, when it is
    gone."""

    def __init__(self, on_idle: Callable[[HttpConn], None], on_lost: Callable[[HttpConn], None]) -> None:
        self.on_idle = on_idle
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.callback: Callable[[int, bytes], None] | None = None
        self.status = 0
        self.length = -1  # the body's length once the head is read
        self.keep_alive = True
        self.lost = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        on_idle: Callable[[HttpConn], None],
        on_lost: Callable[[HttpConn], None],
        timeout: float = 10.0,
    ) -> HttpConn:
        loop = asyncio.get_running_loop()
        proto = cls(on_idle, on_lost)
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: proto, host, port)
        return proto

    @property
    def busy(self) -> bool:
        return self.callback is not None

    def send(self, request: bytes, on_response: Callable[[int, bytes], None]) -> None:
        assert self.callback is None and self.transport is not None
        self.callback = on_response
        self.transport.write(request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.length < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    self._abort()
                return
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = head[0].split(" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    self.keep_alive = False
        if len(buf) < self.length:
            return
        body = bytes(buf[: self.length])
        del buf[: self.length]
        status, callback = self.status, self.callback
        self.length, self.status, self.callback = -1, 0, None
        if callback is not None:
            callback(status, body)
        if not self.keep_alive:
            self.close()
        elif not self.lost:
            self.on_idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(0, b"")
        self.on_lost(self)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
