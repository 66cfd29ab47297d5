"""Quote, then execute that quote: POST /api/quotes and `POST /api/orders/execute {"quoteId"}`.

A quote asks the router (one `Router.Quote`) for the same request a market order makes and answers
every venue's quote, the chosen route, its price impact, min-out and fees. The quote is kept in
Redis for QUOTE_TTL_S under its id, with the owner (the API key's id, gateway.guard) that asked for
it: another key's quote id is unknown to a caller, exactly like another key's order.

Executing a quote creates an order that carries the quoted route (OrderSpec.quoted_route): the
worker executes exactly that route with its min-outs and does not route again; the executor's own
checks against its fresh quote still apply. The order's id is derived from the quote's, so a quote
executes at most once: executing it again answers the same order. A quote past its expiry is told
apart from an unknown one for QUOTE_GRACE_S more (then Redis drops it).

The price-impact guard (`maxPriceImpactBps`, default MAX_PRICE_IMPACT_BPS) refuses a quote whose
route moves a pool further (422, nothing stored); a routed order carries its bound to the worker.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import redis.asyncio as aioredis

from common.amounts import format_amount
from common.markets import Markets
from common.timefmt import iso_ms_from_us
from gateway.validation import ApiError, OrderRequest, parse_max_price_impact, parse_order_request
from gateway.views import quotes_json, route_json
from orderengine.v1 import router_pb2, router_pb2_grpc, types_pb2

QUOTE_GRACE_S = 300
_ORDER_NAMESPACE = uuid.UUID("8f0c2a5e-4f7e-4d43-9a51-6b0f3c1d2e77")  # quote id → its order's id

_ROUTER_ERRORS = {
    grpc.StatusCode.NOT_FOUND: (422, "no_pool", "no pool trades this pair", "tokenOut"),
    grpc.StatusCode.FAILED_PRECONDITION: (422, "no_quote", "no venue can quote this amount", "amount"),
    grpc.StatusCode.INVALID_ARGUMENT: (422, "invalid_argument", "the router refused the request", None),
}


def order_id_of(quote_id: str) -> str:
    """The id of the order that executes a quote (the same every time: a quote executes once)."""
    return str(uuid.uuid5(_ORDER_NAMESPACE, quote_id))


@dataclass(frozen=True)
class StoredQuote:
    quote_id: str
    owner: str
    request: OrderRequest  # what was quoted (tokens, amount, slippage, max price impact)
    route: types_pb2.Route
    expires_at_us: int


class QuoteBook:
    """Quotes in Redis: `<prefix>:quote:<id>` → JSON {owner, mints, amount, route, expiry}."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, quote_id: str) -> str:
        return f"{self.prefix}:quote:{quote_id}"

    async def put(self, owner: str, req: OrderRequest, route: types_pb2.Route) -> StoredQuote:
        quote_id = str(uuid.uuid4())
        expires_at_us = int((time.time() + self.ttl_s) * 1_000_000)
        doc = {
            "owner": owner,
            "in": req.token_in.mint,
            "out": req.token_out.mint,
            "amount": str(req.amount_in),
            "amountOut": str(req.amount_out),
            "slippageBps": req.slippage_bps,
            "maxPriceImpactBps": req.max_price_impact_bps,
            "route": base64.b64encode(route.SerializeToString(deterministic=True)).decode(),
            "expiresAtUs": expires_at_us,
        }
        ttl_ms = int((self.ttl_s + QUOTE_GRACE_S) * 1000)
        await self.redis.set(self.key(quote_id), orjson.dumps(doc), px=ttl_ms)
        return StoredQuote(quote_id, owner, req, route, expires_at_us)

    async def get(self, owner: str, quote_id: str, markets: Markets) -> StoredQuote:
        """The caller's unexpired quote, or a 422 naming quoteId (unknown, another key's, expired)."""
        raw = await self.redis.get(self.key(quote_id))
        doc: dict[str, Any] | None = orjson.loads(raw) if raw else None
        if doc is None or doc.get("owner") != owner:
            raise ApiError(422, "unknown_quote", "no such quote for this API key", "quoteId")
        if time.time() * 1_000_000 >= doc["expiresAtUs"]:
            raise ApiError(422, "quote_expired", "the quote has expired; ask for a new one", "quoteId")
        token_in, token_out = markets.by_mint(doc["in"]), markets.by_mint(doc["out"])
        if token_in is None or token_out is None:  # the markets file changed under the quote
            raise ApiError(422, "unknown_quote", "the quote's tokens are no longer traded", "quoteId")
        route = types_pb2.Route.FromString(base64.b64decode(doc["route"]))
        req = OrderRequest(
            token_in,
            token_out,
            int(doc["amount"]),
            int(doc["slippageBps"]),
            int(doc.get("amountOut", 0)),
            max_price_impact_bps=doc["maxPriceImpactBps"],
            quoted_route=route,
            quote_id=quote_id,
            order_id=order_id_of(quote_id),
        )
        return StoredQuote(quote_id, owner, req, route, int(doc["expiresAtUs"]))


def parse_quote_request(
    body: Any, markets: Markets, default_slippage_bps: int, default_impact: int
) -> OrderRequest:
    """The body of POST /api/quotes (a market order's, with an optional maxPriceImpactBps); the
    price-impact bound is resolved here, so the quote keeps the one it was checked against."""
    req = parse_order_request(body, markets, default_slippage_bps, extra_allowed=("maxPriceImpactBps",))
    impact = parse_max_price_impact(body)
    return OrderRequest(
        req.token_in,
        req.token_out,
        req.amount_in,
        req.slippage_bps,
        req.amount_out,
        max_price_impact_bps=impact if impact is not None else default_impact,
    )


async def ask_router(
    router: router_pb2_grpc.RouterAsyncStub, req: OrderRequest, timeout_s: float
) -> router_pb2.QuoteResponse:
    try:
        return await router.Quote(
            router_pb2.QuoteRequest(
                request_id="quote",
                input_mint=req.token_in.mint,
                output_mint=req.token_out.mint,
                amount_in=req.amount_in,
                amount_out=req.amount_out,
                slippage_bps=req.slippage_bps,
            ),
            timeout=timeout_s,
        )
    except grpc.aio.AioRpcError as exc:
        known = _ROUTER_ERRORS.get(exc.code())
        if known is not None:
            status, code, message, field = known
            detail = exc.details() or ""
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and detail.startswith("amount_in: "):
                # an amount that buys 0 base units on every venue (router_svc.quotes.ZERO_OUTPUT)
                code, message, field = "amount_too_small", "", "amount"
                detail = detail.removeprefix("amount_in: ")
            text = f"{message}: {detail}" if message and detail else message or detail
            raise ApiError(status, code, text, field) from None
        raise ApiError(
            503,
            "unavailable",
            "quotes are temporarily unavailable; retry shortly",
            headers={"Retry-After": "1"},
        ) from None


def check_price_impact(route: types_pb2.Route, limit: int) -> None:
    if route.price_impact_bps > limit:
        raise ApiError(
            422,
            "price_impact_too_high",
            f"the best route moves a pool by {route.price_impact_bps} bps, more than maxPriceImpactBps "
            f"{limit}; trade a smaller amount or allow more impact",
            "maxPriceImpactBps",
        )


def quote_json(stored: StoredQuote, response: router_pb2.QuoteResponse) -> dict[str, Any]:
    req = stored.request
    out_decimals = req.token_out.decimals
    route = response.route
    # exact-out: the input is the route's quoted input, bounded on chain by its max-in
    amount_in = sum(leg.amount_in for leg in route.legs) if route.exact_out else req.amount_in
    exact: dict[str, Any] = {}
    if route.exact_out:
        exact = {
            "maxAmountIn": format_amount(route.max_amount_in, req.token_in.decimals),
            "maxAmountInRaw": str(route.max_amount_in),
        }
    return {
        "quoteId": stored.quote_id,
        "expiresAt": iso_ms_from_us(stored.expires_at_us),
        "tokenIn": {
            "symbol": req.token_in.symbol,
            "mint": req.token_in.mint,
            "decimals": req.token_in.decimals,
        },
        "tokenOut": {"symbol": req.token_out.symbol, "mint": req.token_out.mint, "decimals": out_decimals},
        "exactOut": route.exact_out,
        "amountIn": format_amount(amount_in, req.token_in.decimals),
        "amountInRaw": str(amount_in),
        **exact,
        "slippageBps": req.slippage_bps,
        "maxPriceImpactBps": req.max_price_impact_bps,
        "quotes": quotes_json(list(response.quotes), out_decimals),
        "route": route_json(route, out_decimals),
        "amountOut": format_amount(route.amount_out, out_decimals),
        "amountOutRaw": str(route.amount_out),
        "minAmountOut": format_amount(route.min_amount_out, out_decimals),
        "minAmountOutRaw": str(route.min_amount_out),
        "priceImpactBps": route.price_impact_bps,
        "fee": format_amount(route.fee, req.token_in.decimals),
        "feeRaw": str(route.fee),
        "slot": response.slot,
    }
