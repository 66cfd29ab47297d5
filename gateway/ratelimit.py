"""A token bucket per client in front of /api/*: RATE_LIMIT_PER_S requests per second on average,
bursts up to RATE_LIMIT_BURST. The client is the API key it authenticated with (when API_KEYS is
set; ApiKeyMiddleware runs first and names it) or else its IP address. Over the limit, HTTP answers
429 with Retry-After and the usual error body; a WebSocket handshake is closed with 4429.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_CLIENTS = 100_000  # buckets kept; the least recently seen client is forgotten first
CLOSE_RATE_LIMITED = 4429


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate_per_s
        self.burst = float(max(burst, 1))
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, at)

    def take(self, client: str, now: float) -> float:
        """Takes a token for `client`: 0.0 when it had one, else the seconds until it will."""
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def client_of(scope: Scope) -> str:
    key_id = scope.get("state", {}).get("api_key_id")
    if key_id is not None:
        return f"key:{key_id}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


class RateLimitMiddleware:
    """`buckets`: the gateway's one set of buckets, shared with WebSocket `execute` messages
    (gateway.ws); None = no limit."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets | None) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] not in ("http", "websocket")
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_of(scope), time.monotonic())
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait)))
        if scope["type"] == "websocket":
            # accepted, then closed: a browser can read a close code, not a refused handshake's status
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_RATE_LIMITED, "reason": "rate limited"})
            return
        body = orjson.dumps(
            {"error": {"code": "rate_limited", "message": f"too many requests; retry in {retry_after} s"}}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry_after.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
