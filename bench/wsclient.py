"""A lean WebSocket client (RFC 6455) on an asyncio protocol, for the benchmark's load generator.

Just what a client of `/api/orders/ws` needs and nothing that costs CPU per message beyond framing:
the opening handshake (checked), text frames out (masked, as the RFC requires of clients), text
frames in (unmasked; fragments joined), ping answered with pong, close answered and reported. No
extensions are offered, so nothing is compressed. A received text message is handed to `on_text`
as bytes (orjson parses bytes), from the transport's callback, with no task or queue per message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEADER_BYTES = 16 * 1024


class HandshakeError(Exception):
    """The server did not switch protocols (its status line is the message)."""


def mask(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR the 4-byte `key` repeated (one big-integer XOR: cheap for small messages)."""
    n = len(payload)
    if n == 0:
        return payload
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = random.randbytes(4)
    return head + key + mask(payload, key)


class WsClient(asyncio.Protocol):
    """One WebSocket. `opened` resolves once the handshake succeeded (or fails with its error);
    `on_close(code, reason)` is called once, when the socket is gone for whatever reason (1006: the
    connection dropped without a close frame)."""

    def __init__(
        self,
        url: str,
        on_text: Callable[[bytes], None],
        on_close: Callable[[int, str], None],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = dict(headers or {})
        self.on_text = on_text
        self.on_close = on_close
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.closed = False
        self.close_sent = False
        self.buf = bytearray()
        self.fragments: list[bytes] = []
        self.close_code = 0
        self.close_reason = ""

    @classmethod
    async def connect(
        cls,
        url: str,
        on_text: Callable[[bytes], None],
        on_close: Callable[[int, str], None],
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> WsClient:
        loop = asyncio.get_running_loop()
        proto = cls(url, on_text, on_close, headers)
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: proto, proto.host, proto.port)
            await proto.opened
        return proto

    # --- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = tcp = cast(asyncio.Transport, transport)
        lines = [
            f"GET {self.target} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        tcp.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    self._fail(HandshakeError("handshake response too large"))
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            error = self._check_handshake(head)
            if error is not None:
                self._fail(HandshakeError(error))
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._read_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during the handshake"))
        self._closed(self.close_code or 1006, self.close_reason)

    # --- sending ------------------------------------------------------------------------------------
    def send_text(self, text: bytes) -> None:
        if self.transport is not None and not self.close_sent:
            self.transport.write(frame(OP_TEXT, text))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Sends a close frame; the server answers and drops the connection (connection_lost)."""
        if self.transport is None or self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        self.transport.write(frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- internals ----------------------------------------------------------------------------------
    def _check_handshake(self, head: str) -> str | None:
        status, _, rest = head.partition("\r\n")
        if " 101 " not in f"{status} ":
            return status or "no status line"
        expected = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        for line in rest.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-accept":
                return None if value.strip() == expected else "bad Sec-WebSocket-Accept"
        return "no Sec-WebSocket-Accept"

    def _read_frames(self) -> None:
        buf = self.buf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            at = pos + 2
            if n == 126:
                if size - at < 2:
                    break
                n = (buf[at] << 8) | buf[at + 1]
                at += 2
            elif n == 127:
                if size - at < 8:
                    break
                n = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if b1 & 0x80:  # a masked server frame is a protocol error; read it anyway
                if size - at < 4 + n:
                    break
                key = bytes(buf[at : at + 4])
                payload = mask(bytes(buf[at + 4 : at + 4 + n]), key)
                at += 4 + n
            else:
                if size - at < n:
                    break
                payload = bytes(buf[at : at + n])
                at += n
            pos = at
            self._on_frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
            if self.closed:
                return
        if pos:
            del buf[:pos]

    def _on_frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT or opcode == OP_BINARY:
            if fin:
                self.on_text(payload)
            else:
                self.fragments = [payload]
        elif opcode == OP_CONT:
            self.fragments.append(payload)
            if fin:
                text, self.fragments = b"".join(self.fragments), []
                self.on_text(text)
        elif opcode == OP_PING:
            if self.transport is not None and not self.close_sent:
                self.transport.write(frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.close_code = code
            self.close_reason = payload[2:].decode(errors="replace")
            if not self.close_sent and self.transport is not None:
                self.close_sent = True
                self.transport.write(frame(OP_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()
            self._closed(code, self.close_reason)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def _closed(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.on_close(code, reason)
