"""The gateway's open WebSockets: how many in all and per client (the limits), and one ticker that
does every socket's timed work (ping, idle close, send timeout) instead of a timer per socket.

Over a limit a new socket is accepted and closed at once — a browser can read a close code but not
the status of a refused handshake: with 1013 (try again later) when the gateway holds
WS_MAX_SOCKETS, with 4429 when its client (API key, or IP address) holds WS_MAX_SOCKETS_PER_CLIENT.
Either way the client reconnects after a backoff and resubscribes with afterSeq.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from prometheus_client import Counter

from common.settings import Settings

log = logging.getLogger(__name__)

CLOSE_GATEWAY_FULL = 1013
CLOSE_CLIENT_FULL = 4429

WS_REFUSED = Counter(
    "orderengine_gateway_ws_refused_total",
    "WebSockets closed at once because a limit was reached, by limit (total, per_client).",
    ["limit"],
)


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...


class SocketRegistry:
    def __init__(self, settings: Settings) -> None:
        self.max_total = settings.ws_max_sockets
        self.max_per_client = settings.ws_max_sockets_per_client
        # often enough for the shortest of the timers it serves, at most once a second
        self.tick_s = min(
            1.0,
            settings.ws_ping_interval_s / 2,
            settings.ws_idle_timeout_s / 4,
            settings.ws_send_timeout_s / 4,
        )
        self.sockets: dict[Ticking, str] = {}  # socket → its client
        self.per_client: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.sockets)

    def refusal(self, client: str) -> tuple[int, str] | None:
        """(close code, reason) when one more socket of `client` would pass a limit, else None."""
        if len(self.sockets) >= self.max_total:
            WS_REFUSED.labels("total").inc()
            return CLOSE_GATEWAY_FULL, f"gateway full ({self.max_total} sockets): reconnect later"
        if self.per_client.get(client, 0) >= self.max_per_client:
            WS_REFUSED.labels("per_client").inc()
            return (
                CLOSE_CLIENT_FULL,
                f"too many sockets for this client (at most {self.max_per_client}): "
                "follow several orders per socket, or reconnect later",
            )
        return None

    def add(self, socket: Ticking, client: str) -> None:
        self.sockets[socket] = client
        self.per_client[client] = self.per_client.get(client, 0) + 1

    def remove(self, socket: Ticking) -> None:
        client = self.sockets.pop(socket, None)
        if client is None:
            return
        left = self.per_client[client] - 1
        if left:
            self.per_client[client] = left
        else:
            del self.per_client[client]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            for socket in list(self.sockets):
                try:
                    socket.tick(now)
                except Exception:  # noqa: BLE001 - one socket's failure must not stop the others'
                    log.exception("websocket tick failed")
