"""The HTTP + WebSocket edge: the contract of DESIGN.md ("HTTP and WebSocket contract").

Resources (Redis client, the persistence channel, the event hub) are opened in the lifespan and
closed there; nothing global is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import jobs, lifecycle
from common.errors import status_code
from common.grpc_auth import client_token
from common.grpc_client import open_channel, open_stream_channel
from common.markets import Markets, load_markets
from common.redis_client import open_redis
from common.settings import REPO_ROOT, Settings
from gateway.batcher import BatchFailed, OrderBatcher
from gateway.fanout import Feeds, grpc_reader
from gateway.guard import EdgeGuardMiddleware, OrderLimits, owner_id, owner_of, require_api_keys, resolve_caps
from gateway.hub import EventHub
from gateway.openapi import openapi_document
from gateway.quotes import QuoteBook, ask_router, check_price_impact, parse_quote_request, quote_json
from gateway.ratelimit import RateLimitMiddleware, TokenBuckets
from gateway.sockets import SocketRegistry
from gateway.validation import (
    RESTING_FIELDS,
    ApiError,
    OrderRequest,
    check_idempotency_key,
    is_order_id,
    parse_max_price_impact,
    parse_order_request,
    parse_quote_id,
    parse_resting,
)
from gateway.views import order_json
from orderengine.v1 import orders_pb2, orders_pb2_grpc, router_pb2_grpc

log = logging.getLogger(__name__)

QUEUE_BACKLOG = Gauge(
    "orderengine_gateway_queue_backlog", "Order jobs queued or in flight (the Redis stream's length)."
)
ORDERS_ACCEPTED = Counter(
    "orderengine_gateway_orders_accepted_total",
    "Orders answered 202, by whether this request created the order (an idempotent repeat does not).",
    ["created"],
)

WEB_DIR = REPO_ROOT / "web"
RPC_TIMEOUT_S = 5.0
EXPLORERS = {
    "devnet": "https://explorer.solana.com/tx/{sig}?cluster=devnet",
    "mainnet-beta": "https://explorer.solana.com/tx/{sig}",
}


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(err: ApiError) -> Response:
    return OrjsonResponse(err.body(), status_code=err.status, headers=err.headers)


@dataclass
class EdgeState:
    settings: Settings
    markets: Markets
    redis: aioredis.Redis
    keys: jobs.Keys
    orders: orders_pb2_grpc.OrdersAsyncStub
    channel: grpc.aio.Channel
    hub: EventHub
    sockets: SocketRegistry
    backlog: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    limits: OrderLimits | None = None  # MAX_ORDER_AMOUNT, DAILY_NOTIONAL_CAP (gateway.guard)
    batcher: OrderBatcher | None = None  # new orders in micro-batches (gateway.batcher)
    router: router_pb2_grpc.RouterAsyncStub | None = None  # POST /api/quotes (gateway.quotes)
    quote_book: QuoteBook | None = None


_ORDER_TYPES = {
    "market": orders_pb2.ORDER_TYPE_MARKET,
    "limit": orders_pb2.ORDER_TYPE_LIMIT,
    "stop": orders_pb2.ORDER_TYPE_STOP,
    "sniper": orders_pb2.ORDER_TYPE_SNIPER,
}


def grpc_to_api(exc: grpc.aio.AioRpcError) -> ApiError:
    return status_to_api(exc.code(), exc.details() or "")


def status_to_api(code: grpc.StatusCode, detail: str) -> ApiError:
    """A persistence status (a call's, or one batch member's) as the API's error."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field_name = detail.split(":", 1)[0] if ":" in detail else None
        return ApiError(422, "invalid_argument", detail, field_name)
    if code == grpc.StatusCode.NOT_FOUND:
        return ApiError(404, "not_found", detail or "not found")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return ApiError(
            422,
            "idempotency_key_reused",
            "Idempotency-Key was already used with a different request",
            "Idempotency-Key",
        )
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    ):
        return ApiError(
            503,
            "unavailable",
            "the engine is temporarily unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    log.error("persistence call failed", extra={"grpc_code": code.name})
    return ApiError(500, "internal", "internal error")


async def submit_order(
    state: EdgeState, req: OrderRequest, idempotency_key: str, owner: str = ""
) -> tuple[str, bool]:
    """Creates the order (committed in Postgres first) for `owner` (gateway.guard; "" = none) and
    queues its job. Returns (id, created)."""
    if state.backlog >= state.settings.queue_max_depth:
        raise ApiError(
            503, "overloaded", "too many orders in flight; retry shortly", headers={"Retry-After": "1"}
        )
    limits = state.limits
    counted = 0
    mint = req.token_in.mint
    # A quote executes once (its order id is the quote's): executing it again counts nothing again.
    # (An Idempotency-Key never starts with a space, so this marker is no client's key.)
    counted_as = idempotency_key or (f" quote:{req.quote_id}" if req.quote_id else "")
    spend = req.amount_in
    if limits is not None:
        if req.amount_out and (mint in limits.max_amount or mint in limits.daily_cap):
            spend = await exact_out_spend(state, req)
        limits.check_amount(mint, spend)
        try:
            counted = await limits.take_daily(owner, mint, spend, counted_as)
        except aioredis.RedisError:
            raise ApiError(503, "unavailable", "retry shortly", headers={"Retry-After": "1"}) from None
        if counted < 0:
            raise ApiError(
                429,
                "daily_limit_exceeded",
                f"this API key's daily limit for {req.token_in.symbol or mint} is reached",
                "amount",
                headers={"Retry-After": str(limits.seconds_to_midnight())},
            )
    try:
        order_id, created = await _create_and_queue(state, req, idempotency_key, owner)
    except BaseException:
        if counted > 0 and limits is not None:
            with contextlib.suppress(aioredis.RedisError):
                await limits.give_back(owner, mint, spend, counted_as)
        raise
    return order_id, created


async def exact_out_spend(state: EdgeState, req: OrderRequest) -> int:
    """What an exact-out order counts against the input token's limits: its route's max-in (a
    quoted order's own route, else the router's quote now; the worker quotes again, so the max-in
    it sends may differ by what the market moved since)."""
    if req.quoted_route is not None:
        return req.quoted_route.max_amount_in
    assert state.router is not None
    response = await ask_router(state.router, req, RPC_TIMEOUT_S)
    return response.route.max_amount_in


async def _create_and_queue(
    state: EdgeState, req: OrderRequest, idempotency_key: str, owner: str
) -> tuple[str, bool]:
    spec = orders_pb2.OrderSpec(
        input_mint=req.token_in.mint,
        output_mint=req.token_out.mint,
        amount_in=req.amount_in,
        amount_out=req.amount_out,
        slippage_bps=req.slippage_bps,
        input_decimals=req.token_in.decimals,
        output_decimals=req.token_out.decimals,
        input_symbol=req.token_in.symbol,
        output_symbol=req.token_out.symbol,
        max_price_impact_bps=(
            state.settings.max_price_impact_bps
            if req.max_price_impact_bps is None
            else req.max_price_impact_bps
        ),
        quoted_route=req.quoted_route,
        quote_id=req.quote_id,
        order_type=_ORDER_TYPES[req.order_type],
        trigger_price=req.trigger_price,
        expires_at_us=req.expires_at_us,
        min_liquidity=req.min_liquidity,
        max_price=req.max_price,
    )
    request = orders_pb2.CreateOrderRequest(
        spec=spec,
        order_id=req.order_id or str(uuid.uuid4()),
        idempotency_key=idempotency_key,
        request_hash=req.canonical_hash() if idempotency_key else "",
        owner=owner,
    )
    # Committed (one CreateOrders for the micro-batch) and queued (one XADD pipeline) before it
    # returns; a Redis outage leaves the committed order to the worker's recovery scan.
    assert state.batcher is not None
    try:
        result = await state.batcher.create(request)
    except BatchFailed as exc:
        if exc.error is None:
            raise ApiError(500, "internal", "internal error") from None
        raise grpc_to_api(exc.error) from None
    if result.code != 0:
        raise status_to_api(status_code(result.code), result.message)
    order_id = result.order.order_id
    ORDERS_ACCEPTED.labels("true" if result.created else "false").inc()
    if result.created:
        state.backlog += 1
    return order_id, result.created


async def read_json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "body_too_large", f"the body must be at most {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def state_of(request: Request) -> EdgeState:
    return request.app.state.edge  # type: ignore[no-any-return]


async def execute_order(request: Request) -> Response:
    state = state_of(request)
    try:
        key = check_idempotency_key(request.headers.get("idempotency-key"))
        body = await read_json_body(request, state.settings.max_body_bytes)
        req = await order_request(state, body, owner_of(request.scope))
        order_id, _created = await submit_order(state, req, key, owner_of(request.scope))
    except ApiError as err:
        return error_response(err)
    return OrjsonResponse(
        {"orderId": order_id, "status": "pending", "wsUrl": f"/api/orders/ws?orderId={order_id}"},
        status_code=202,
    )


async def order_request(
    state: EdgeState, body: Any, owner: str, extra_allowed: tuple[str, ...] = ()
) -> OrderRequest:
    """An order from a decoded execute body (HTTP or WS): a market order, or `{"quoteId"}`, the
    caller's stored quote with its route (gateway.quotes)."""
    if isinstance(body, dict) and "quoteId" in body:
        quote_id = parse_quote_id(body, extra_allowed)
        assert state.quote_book is not None
        try:
            stored = await state.quote_book.get(owner, quote_id, state.markets)
        except aioredis.RedisError:
            raise ApiError(503, "unavailable", "retry shortly", headers={"Retry-After": "1"}) from None
        return stored.request
    req = parse_order_request(
        body,
        state.markets,
        state.settings.default_slippage_bps,
        ("maxPriceImpactBps", *RESTING_FIELDS, *extra_allowed),
    )
    impact = parse_max_price_impact(body)
    if impact is not None:
        req = dataclasses.replace(req, max_price_impact_bps=impact)
    now_us = int(time.time() * 1_000_000)
    return parse_resting(body, req, state.settings.order_max_expiry_s, now_us)


async def quote_answer(state: EdgeState, body: Any, owner: str) -> dict[str, Any]:
    """POST /api/quotes (and WS `quote`): asks the router, applies the price-impact guard, stores
    the quote for the owner and returns its JSON."""
    req = parse_quote_request(
        body, state.markets, state.settings.default_slippage_bps, state.settings.max_price_impact_bps
    )
    assert state.router is not None and state.quote_book is not None and req.max_price_impact_bps
    if state.limits is not None:
        state.limits.check_amount(req.token_in.mint, req.amount_in)
    response = await ask_router(state.router, req, RPC_TIMEOUT_S)
    if state.limits is not None and req.amount_out:
        state.limits.check_amount(req.token_in.mint, response.route.max_amount_in)
    check_price_impact(response.route, req.max_price_impact_bps)
    try:
        stored = await state.quote_book.put(owner, req, response.route)
    except aioredis.RedisError:
        raise ApiError(503, "unavailable", "retry shortly", headers={"Retry-After": "1"}) from None
    return quote_json(stored, response)


async def create_quote(request: Request) -> Response:
    state = state_of(request)
    try:
        body = await read_json_body(request, state.settings.max_body_bytes)
        answer = await quote_answer(state, body, owner_of(request.scope))
    except ApiError as err:
        return error_response(err)
    return OrjsonResponse(answer, status_code=201)


async def cancel_order(request: Request) -> Response:
    """POST /api/orders/{id}/cancel: an open (resting) order → cancelled. Racing its trigger or its
    expiry, exactly one wins (persistence decides); a cancel that lost, or of an order that is not
    open, is 409 naming the order's status."""
    state = state_of(request)
    order_id = request.path_params["order_id"]
    if not is_order_id(order_id):
        return error_response(ApiError(404, "not_found", "no such order", "orderId"))
    try:
        order = await state.orders.CancelOrder(
            orders_pb2.CancelOrderRequest(order_id=order_id, owner=owner_of(request.scope)),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return error_response(ApiError(404, "not_found", "no such order", "orderId"))
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            detail = (exc.details() or "").split(": ", 1)[-1]
            return error_response(ApiError(409, "not_open", detail or "the order is not open", "orderId"))
        return error_response(grpc_to_api(exc))
    return OrjsonResponse(order_json(order, state.markets))


async def get_order(request: Request) -> Response:
    state = state_of(request)
    order_id = request.path_params["order_id"]
    if not is_order_id(order_id):
        return error_response(ApiError(404, "not_found", "no such order", "orderId"))
    try:
        order = await state.orders.GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id, with_events=True, owner=owner_of(request.scope)),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        err = grpc_to_api(exc)
        if err.status == 404:
            err = ApiError(404, "not_found", "no such order", "orderId")
        return error_response(err)
    return OrjsonResponse(order_json(order, state.markets, with_events=True))


async def list_orders(request: Request) -> Response:
    state = state_of(request)
    params = request.query_params
    try:
        limit_raw = params.get("limit", "50")
        valid = limit_raw.isascii() and limit_raw.isdigit() and len(limit_raw) <= 3  # ASCII: "٣".isdigit()
        if not valid or not 1 <= int(limit_raw) <= 200:
            raise ApiError(422, "invalid_limit", "limit must be an integer from 1 to 200", "limit")
        status_raw = params.get("status", "")
        if status_raw and status_raw not in lifecycle.VALUES:
            raise ApiError(
                422, "invalid_status", f"status must be one of {', '.join(lifecycle.STATUSES)}", "status"
            )
        cursor = params.get("cursor", "")
        if len(cursor) > 512:
            raise ApiError(422, "invalid_cursor", "cursor is not valid", "cursor")
        try:
            page = await state.orders.ListOrders(
                orders_pb2.ListOrdersRequest(
                    limit=int(limit_raw),
                    cursor=cursor,
                    status=lifecycle.VALUES.get(status_raw, orders_pb2.ORDER_STATUS_UNSPECIFIED),
                    owner=owner_of(request.scope),
                ),
                timeout=RPC_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            err = grpc_to_api(exc)
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                err = ApiError(422, "invalid_cursor", "cursor is not valid", "cursor")
            raise err from None
    except ApiError as err:
        return error_response(err)
    return OrjsonResponse(
        {
            "orders": [order_json(o, state.markets) for o in page.orders],
            "nextCursor": page.next_cursor or None,
        }
    )


async def get_markets(request: Request) -> Response:
    state = state_of(request)
    return OrjsonResponse(
        {
            "cluster": state.markets.cluster,
            "explorer": EXPLORERS.get(state.settings.chain),
            "tokens": [
                {"symbol": t.symbol, "mint": t.mint, "decimals": t.decimals} for t in state.markets.tokens
            ],
            "venues": sorted({p.venue for p in state.markets.pools}),
        }
    )


async def healthz(request: Request) -> Response:
    state = state_of(request)
    if getattr(request.app.state, "stopping", False):  # SIGTERM received (gateway/server.py)
        return OrjsonResponse({"status": "stopping", "checks": {}}, status_code=503)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(state.redis.ping(), 1.0)
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unavailable"
    try:
        await state.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=1), timeout=1.0)
        checks["persistence"] = "ok"
    except grpc.aio.AioRpcError:
        checks["persistence"] = "unavailable"
    healthy = all(v == "ok" for v in checks.values())
    return OrjsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status_code=200 if healthy else 503
    )


async def openapi_json(request: Request) -> Response:
    return OrjsonResponse(openapi_document())


_LIFECYCLE_JS = lifecycle.javascript_module().encode()


async def lifecycle_js(request: Request) -> Response:
    """The lifecycle for the page, generated from common/lifecycle.py (the page has no table of its own)."""
    return Response(_LIFECYCLE_JS, media_type="text/javascript", headers={"cache-control": "no-cache"})


async def not_found(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(404, "not_found", "no such resource"))


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(405, "method_not_allowed", "method not allowed"))


CLOSE_UNAUTHORIZED = 4401


async def refuse_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accepts the handshake and closes at once with `code`: a browser can read a close code, but
    not the status of a refused handshake (which ASGI servers answer with a bare 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class ApiKeyMiddleware:
    """When API_KEYS is set, /api/* requires `Authorization: Bearer <key>` or `X-API-Key: <key>`
    (WebSocket: also `?apiKey=`), compared in constant time."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.owners = [owner_id(k) for k in keys]

    def _match(self, scope: Scope) -> int | None:
        """The index of the configured key the request presents, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        if "x-api-key" in headers:
            candidates.append(headers["x-api-key"].strip())
        if scope["type"] == "websocket":
            from urllib.parse import parse_qs

            qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            candidates.extend(qs.get("apiKey", []))
        match = None
        for candidate in candidates:
            for index, key in enumerate(self.keys):
                if hmac.compare_digest(candidate.encode(), key):
                    match = index
        return match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.keys
            or scope["type"] not in ("http", "websocket")
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        match = self._match(scope)
        if match is not None:
            state = scope.setdefault("state", {})
            state["api_key_id"] = match  # the client, for the rate limit
            state["owner"] = self.owners[match]  # whose orders it sees (gateway.guard)
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await refuse_websocket(receive, send, CLOSE_UNAUTHORIZED, "unauthorized")
            return
        err = ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)")
        await error_response(err)(scope, receive, send)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (
                        b"content-security-policy",
                        b"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                        b"style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                    ),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, markets: Markets | None = None) -> Starlette:
    from gateway.ws import order_socket

    # Configuration errors stop the process here, with one line, not in the lifespan's traceback.
    require_api_keys(settings)
    client_token(settings, "gateway")  # GRPC_TOKENS
    if settings.max_order_amount or settings.daily_notional_cap:
        limits_markets = markets or load_markets(settings.markets_path)
        resolve_caps("MAX_ORDER_AMOUNT", settings.max_order_amount, limits_markets)
        resolve_caps("DAILY_NOTIONAL_CAP", settings.daily_notional_cap, limits_markets)
    # One token bucket per client, shared by HTTP requests and WebSocket `execute` messages.
    buckets = (
        TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        if settings.rate_limit_per_s > 0
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        market_data = markets or load_markets(settings.markets_path)
        redis = open_redis(settings)
        limits = OrderLimits.from_settings(settings, market_data, redis)  # ConfigError: before any I/O
        keys = jobs.Keys(settings.redis_prefix)
        channel = open_channel(settings.persistence_addr, settings, "gateway")
        stub = orders_pb2_grpc.OrdersStub(channel)
        router_channel = open_channel(settings.router_addr, settings, "gateway")
        feeds = Feeds(grpc_reader(stub), settings.ws_cache_orders, settings.ws_catchup_retry_s)
        hub = EventHub(redis, keys.events, feeds)
        await hub.start()
        with contextlib.suppress(aioredis.RedisError):
            await jobs.ensure_group(redis, keys)
        sockets = SocketRegistry(settings)
        state = EdgeState(settings, market_data, redis, keys, stub, channel, hub, sockets)
        state.limits = limits if limits.max_amount or limits.daily_cap else None
        state.router = router_pb2_grpc.RouterStub(router_channel)
        state.quote_book = QuoteBook(redis, settings.redis_prefix, settings.quote_ttl_s)
        stream_channel, stream_metadata = open_stream_channel(settings.persistence_addr, settings, "gateway")
        state.batcher = OrderBatcher(
            orders_pb2_grpc.OrdersStub(stream_channel),
            redis,
            keys,
            max_wait_s=settings.create_batch_ms / 1000,
            max_size=settings.create_batch_max,
            timeout_s=RPC_TIMEOUT_S,
            metadata=stream_metadata,
        )
        state.tasks.append(asyncio.create_task(_watch_backlog(state), name="backlog"))
        state.tasks.append(asyncio.create_task(sockets.run(), name="ws-ticker"))
        app.state.edge = state
        try:
            yield
        finally:
            for task in state.tasks:
                task.cancel()
            for task in state.tasks:  # let each finish its cancellation before the clients close
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await state.batcher.close()
            await stream_channel.close()
            await hub.stop()
            await feeds.aclose()
            await channel.close()
            await router_channel.close()
            await redis.aclose()

    routes: list[Any] = [
        Route("/api/orders/execute", execute_order, methods=["POST"]),
        Route("/api/quotes", create_quote, methods=["POST"]),
        Route("/api/orders", list_orders, methods=["GET"]),
        Route("/api/orders/{order_id}", get_order, methods=["GET"]),
        Route("/api/orders/{order_id}/cancel", cancel_order, methods=["POST"]),
        Route("/api/markets", get_markets, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/js/lifecycle.js", lifecycle_js, methods=["GET"]),
        WebSocketRoute("/api/orders/ws", order_socket),
    ]
    if Path(WEB_DIR).is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    # Outermost first: CORS answers preflights and decorates every answer (401 and 429 too), then
    # the API key names the client, then that client's rate limit.
    middleware = [Middleware(SecurityHeadersMiddleware)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "X-API-Key", "Idempotency-Key", "Content-Type"],
                expose_headers=["Retry-After"],
                max_age=600,
            )
        )
    middleware += [
        Middleware(EdgeGuardMiddleware, settings=settings),
        Middleware(ApiKeyMiddleware, keys=settings.api_keys),
        Middleware(RateLimitMiddleware, buckets=buckets),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.state.rate_buckets = buckets
    return app


def cancelling() -> bool:
    """True once the current task was asked to stop, even if the CancelledError was swallowed on the
    way (redis-py can turn a cancelled command into a ConnectionError): loops that suppress Redis
    errors check this, or they could never be stopped."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _watch_backlog(state: EdgeState) -> None:
    """Refreshes the queue backlog every 100 ms so POST never pays a Redis call for backpressure."""
    while not cancelling():
        with contextlib.suppress(aioredis.RedisError):
            state.backlog = await jobs.backlog(state.redis, state.keys)
            QUEUE_BACKLOG.set(state.backlog)
        await asyncio.sleep(0.1)
