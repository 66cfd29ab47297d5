"""uvicorn's websockets-sansio WebSocket protocol, plus one ASGI extension for the fan-out.

A status event goes to thousands of sockets as the same bytes: a server's text frame is never
masked, so its frame (header + UTF-8 payload) is identical for every socket and is built once per
event (`text_frame`, gateway/fanout.py). The extension `EXTENSION` in the scope is a function that
writes such a frame straight to the socket's transport — only while the connection is open, its
handshake done, no close sent and the transport not pushing back; otherwise it returns False and the
caller sends through ASGI as usual (which waits for the transport). The WebSocket state machine
tracks nothing about outgoing data frames, and the gateway never fragments a message nor offers
permessage-deflate (gateway/server.py), so a frame written this way is exactly what
`websocket.send` would have written.

`python -m gateway` runs uvicorn with this class (`ws=`); under any other server the extension is
absent and every message goes through ASGI.
"""

from __future__ import annotations

import struct

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

EXTENSION = "orderengine.websocket.write_frame"
PROTOCOL = "gateway.wsproto:FanoutWebSocketProtocol"


def text_frame(text: str) -> bytes:
    """The unmasked, final, uncompressed text frame that carries `text` (RFC 6455, 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][EXTENSION] = self.write_frame

    def write_frame(self, frame: bytes) -> bool:
        """Writes a prebuilt data frame now, or returns False when it must go through ASGI."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
