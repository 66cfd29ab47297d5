"""The edge's doors besides the API key and the rate limit: Host, Origin, Content-Type, who owns an
order, and how much one order and one key may trade.

- Host: with TRUSTED_HOSTS set, a request naming another host (DNS rebinding, a stray vhost) is
  refused with 400 (a WebSocket closed with 4400); `/healthz` stays reachable for probes.
- Origin: a POST or WebSocket handshake that carries an Origin header must come from the page's own
  origin (the Origin's host equals the Host header) or from one in CORS_ORIGINS; otherwise 403 (a
  WebSocket closed with 4403). A browser sends Origin on every cross-site POST and WebSocket, so a
  page on another site cannot trade through a visitor's reachable gateway.
- Content-Type: a POST to /api/* must be `application/json` (415 otherwise), so a cross-site form
  or a `text/plain` fetch (which browsers send without a CORS preflight) is never an order.
- Owner: with API_KEYS, each order belongs to the key that made it, stored as a non-reversible id
  (`owner_id`, a SHA-256 prefix, never the key); a key sees and reuses idempotency keys of its own
  orders only. Without API_KEYS the owner is "" and everything is shared, as before.
- Limits: MAX_ORDER_AMOUNT caps one order's input per token (422 `amount_too_large`), and
  DAILY_NOTIONAL_CAP caps what one API key trades per token per UTC day, counted in the input
  token's base units in Redis by one atomic script (429 `daily_limit_exceeded`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from starlette.types import ASGIApp, Receive, Scope, Send

from common.amounts import parse_amount
from common.markets import Markets
from common.settings import ConfigError, Settings
from gateway.validation import ApiError

CLOSE_BAD_HOST = 4400
CLOSE_FORBIDDEN_ORIGIN = 4403
OPEN_PATHS = ("/healthz",)


def require_api_keys(settings: Settings) -> None:
    """On every chain but the simulated one the edge moves real money: no key, no start."""
    if settings.chain != "sim" and not settings.api_keys:
        raise ConfigError(
            "API_KEYS", f"required when CHAIN={settings.chain} (the edge would be open to anyone)"
        )


def owner_id(api_key: str) -> str:
    """The id an order's owner is stored under: a SHA-256 prefix of the key (never the key)."""
    return hashlib.sha256(b"orderengine-owner\x00" + api_key.encode()).hexdigest()[:32]


def owner_of(scope: Scope) -> str:
    """The owner of the request's orders ("" without API_KEYS); set by ApiKeyMiddleware."""
    owner = scope.get("state", {}).get("owner", "")
    return owner if isinstance(owner, str) else ""


# ------------------------------------------------------------------------------------------------
# Host, Origin, Content-Type


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def host_allowed(host_header: str, trusted: tuple[str, ...]) -> bool:
    """Is the Host header's name (port dropped) one of `trusted` (`*.example.com` matches its
    subdomains)? Nothing configured: every host."""
    if not trusted:
        return True
    name = urlsplit(f"//{host_header}").hostname or ""
    for pattern in trusted:
        pattern = pattern.lower()
        if pattern == "*" or name == pattern.strip("[]"):
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def origin_allowed(origin: str, host_header: str, cors_origins: tuple[str, ...]) -> bool:
    """Same origin (the Origin's host:port is the Host header) or one of CORS_ORIGINS."""
    if "*" in cors_origins or origin in cors_origins:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and anything malformed
    return parts.netloc.lower() == host_header.lower()


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json"


async def _refuse(scope: Scope, receive: Receive, send: Send, err: ApiError, close_code: int) -> None:
    if scope["type"] == "websocket":
        from gateway.app import refuse_websocket

        await refuse_websocket(receive, send, close_code, err.code)
        return
    from gateway.app import error_response

    await error_response(err)(scope, receive, send)


class EdgeGuardMiddleware:
    """Host, then Origin, then Content-Type (module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.trusted = settings.trusted_hosts
        self.cors = settings.cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        path: str = scope["path"]
        if path not in OPEN_PATHS and not host_allowed(host, self.trusted):
            err = ApiError(400, "invalid_host", "this host name is not served here", "Host")
            await _refuse(scope, receive, send, err, CLOSE_BAD_HOST)
            return
        is_post = scope["type"] == "http" and scope.get("method") == "POST"
        origin = headers.get("origin")
        if origin is not None and (is_post or scope["type"] == "websocket"):
            if not origin_allowed(origin, host, self.cors):
                err = ApiError(403, "forbidden_origin", "requests from this origin are not allowed", "Origin")
                await _refuse(scope, receive, send, err, CLOSE_FORBIDDEN_ORIGIN)
                return
        if is_post and path.startswith("/api/") and not is_json(headers.get("content-type", "")):
            err = ApiError(
                415, "unsupported_media_type", "the body must be sent as application/json", "Content-Type"
            )
            await _refuse(scope, receive, send, err, 0)
            return
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------------------------------
# per-order and per-day limits

# KEYS[1] the day's counter, KEYS[2] the marker of the request's idempotency key (or "" without
# one); ARGV[1] the amount, ARGV[2] the cap, ARGV[3] the TTL (s). An idempotency key already counted
# counts nothing again (0); else the amount is added only if the total stays within the cap (1), or
# nothing is added (-1).
_TAKE = """
if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return -1
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
end
return 1
"""
DAY_S = 86_400


def resolve_caps(variable: str, pairs: tuple[tuple[str, str], ...], markets: Markets) -> dict[str, int]:
    """mint → cap in base units; ConfigError naming `variable` for an unknown token or a bad amount."""
    caps: dict[str, int] = {}
    for name, amount in pairs:
        token = markets.token(name)
        if token is None:
            raise ConfigError(variable, f"unknown token {name!r} on {markets.cluster}")
        try:
            caps[token.mint] = parse_amount(amount, token.decimals)
        except ValueError as exc:
            raise ConfigError(variable, f"{name}: {exc}") from None
    return caps


class OrderLimits:
    def __init__(
        self, max_amount: Mapping[str, int], daily_cap: Mapping[str, int], redis: aioredis.Redis, prefix: str
    ) -> None:
        self.max_amount = dict(max_amount)
        self.daily_cap = dict(daily_cap)
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_TAKE)

    @classmethod
    def from_settings(cls, settings: Settings, markets: Markets, redis: aioredis.Redis) -> OrderLimits:
        return cls(
            resolve_caps("MAX_ORDER_AMOUNT", settings.max_order_amount, markets),
            resolve_caps("DAILY_NOTIONAL_CAP", settings.daily_notional_cap, markets),
            redis,
            settings.redis_prefix,
        )

    def check_amount(self, mint: str, amount_in: int) -> None:
        cap = self.max_amount.get(mint)
        if cap is not None and amount_in > cap:
            raise ApiError(
                422,
                "amount_too_large",
                f"amount is above this engine's limit per order ({cap} base units)",
                "amount",
            )

    def _counter(self, owner: str, mint: str, now: float) -> str:
        return f"{self._prefix}:notional:{owner}:{int(now // DAY_S)}:{mint}"

    def _marker(self, owner: str, idempotency_key: str) -> str:
        if not idempotency_key:
            return ""
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        return f"{self._prefix}:notional-key:{owner}:{digest}"

    async def take_daily(
        self, owner: str, mint: str, amount_in: int, idempotency_key: str = "", now: float | None = None
    ) -> int:
        """Counts `amount_in` against the key's cap for today: 1 counted, 0 nothing to count (no
        owner, no cap for the token, or a repeat of an idempotency key already counted), -1 over
        the cap (nothing counted)."""
        cap = self.daily_cap.get(mint)
        if cap is None or not owner:
            return 0
        when = time.time() if now is None else now
        keys = [self._counter(owner, mint, when), self._marker(owner, idempotency_key)]
        return int(await self._script(keys=keys, args=[amount_in, cap, 2 * DAY_S]))

    async def give_back(
        self, owner: str, mint: str, amount_in: int, idempotency_key: str = "", now: float | None = None
    ) -> None:
        """Returns an amount counted for an order that was not created (an error, or a repeat of an
        order made before the count)."""
        when = time.time() if now is None else now
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.decrby(self._counter(owner, mint, when), amount_in)
            marker = self._marker(owner, idempotency_key)
            if marker:
                pipe.delete(marker)
            await pipe.execute()

    @staticmethod
    def seconds_to_midnight(now: float | None = None) -> int:
        when = time.time() if now is None else now
        return int(DAY_S - when % DAY_S) + 1
