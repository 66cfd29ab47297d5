"""Proto messages → the JSON the API shows. Amounts leave as decimal strings beside their raw twins."""

from __future__ import annotations

import json
from typing import Any

from common import lifecycle
from common.amounts import format_amount
from common.markets import Markets
from common.timefmt import iso_ms_from_us
from orderengine.v1 import orders_pb2, types_pb2


def quotes_json(quotes: list[types_pb2.VenueQuote], out_decimals: int) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for q in quotes:
        if q.error:
            result.append({"venue": q.venue, "pool": q.pool, "error": q.error})
        else:
            result.append(
                {
                    "venue": q.venue,
                    "pool": q.pool,
                    "amountInRaw": str(q.amount_in),  # exact-out: the input this venue needs
                    "amountOut": format_amount(q.amount_out, out_decimals),
                    "amountOutRaw": str(q.amount_out),
                    "feeRaw": str(q.fee),
                    "priceImpactBps": q.price_impact_bps,
                }
            )
    return result


def route_json(route: types_pb2.Route, out_decimals: int) -> dict[str, Any]:
    legs = [
        {
            "venue": leg.venue,
            "pool": leg.pool,
            "amountInRaw": str(leg.amount_in),
            "amountOutRaw": str(leg.amount_out),
            "minAmountOutRaw": str(leg.min_amount_out),
            "priceImpactBps": leg.price_impact_bps,
            "feeRaw": str(leg.fee),
            **({"exactOut": True, "maxAmountInRaw": str(leg.max_amount_in)} if leg.exact_out else {}),
        }
        for leg in route.legs
    ]
    exact = {"exactOut": True, "maxAmountInRaw": str(route.max_amount_in)} if route.exact_out else {}
    return {
        "legs": legs,
        "dex": route.legs[0].venue if len(route.legs) == 1 else "split",
        "amountOut": format_amount(route.amount_out, out_decimals),
        "amountOutRaw": str(route.amount_out),
        "minAmountOut": format_amount(route.min_amount_out, out_decimals),
        "minAmountOutRaw": str(route.min_amount_out),
        "priceImpactBps": route.price_impact_bps,
        "feeRaw": str(route.fee),
        **exact,
    }


SOL_DECIMALS = 9
_NATIVE_MINT = "So11111111111111111111111111111111111111112"


def costs_json(cost: types_pb2.TradeCost, spec: orders_pb2.OrderSpec) -> dict[str, Any]:
    """A confirmed swap's costs (the `confirmed` event's and the order's `costs`): the fees and the
    rent in SOL, each of the wallet's balance changes in its mint's units (signed: negative is
    what the wallet lost)."""
    tokens = {
        _NATIVE_MINT: ("SOL", SOL_DECIMALS),
        spec.input_mint: (spec.input_symbol, spec.input_decimals),
        spec.output_mint: (spec.output_symbol, spec.output_decimals),
    }
    changes = []
    for change in cost.balance_changes:
        symbol, decimals = tokens.get(change.mint, ("", -1))
        changes.append(
            {
                "mint": change.mint,
                "symbol": symbol or None,
                "change": format_amount(change.change, decimals) if decimals >= 0 else None,
                "changeRaw": str(change.change),
            }
        )
    return {
        "networkFee": format_amount(cost.network_fee, SOL_DECIMALS),
        "networkFeeRaw": str(cost.network_fee),
        "priorityFee": format_amount(cost.priority_fee, SOL_DECIMALS),
        "priorityFeeRaw": str(cost.priority_fee),
        "rent": format_amount(cost.rent, SOL_DECIMALS),
        "rentRaw": str(cost.rent),
        "balanceChanges": changes,
    }


def resting_json(spec: orders_pb2.OrderSpec) -> dict[str, Any]:
    """A resting order's terms (the `open` event's data, the order's JSON); {} for a market order."""
    if spec.order_type == orders_pb2.ORDER_TYPE_MARKET:
        return {}
    if spec.order_type == orders_pb2.ORDER_TYPE_SNIPER:
        return {
            "type": "sniper",
            "minLiquidity": format_amount(spec.min_liquidity, spec.input_decimals),
            "minLiquidityRaw": str(spec.min_liquidity),
            "maxPrice": format_amount(spec.max_price, spec.input_decimals) if spec.max_price else None,
            "maxPriceRaw": str(spec.max_price) if spec.max_price else None,
            "expiresAt": iso_ms_from_us(spec.expires_at_us),
        }
    limit = spec.order_type == orders_pb2.ORDER_TYPE_LIMIT
    name = "limitPrice" if limit else "stopPrice"
    return {
        "type": "limit" if limit else "stop",
        name: format_amount(spec.trigger_price, spec.output_decimals),
        f"{name}Raw": str(spec.trigger_price),
        "expiresAt": iso_ms_from_us(spec.expires_at_us),
    }


def event_json(event: orders_pb2.OrderEvent) -> dict[str, Any]:
    """The WebSocket message of an event (the same shape persistence publishes on Redis)."""
    return {
        "type": "status",
        "orderId": event.order_id,
        "seq": event.seq,
        "status": lifecycle.name_of(event.status),
        "at": iso_ms_from_us(event.at_us),
        "data": json.loads(event.data_json) if event.data_json else {},
    }


def _token_json(symbol: str, mint: str, decimals: int, markets: Markets | None) -> dict[str, Any]:
    if not symbol and markets is not None:
        token = markets.by_mint(mint)
        symbol = token.symbol if token else ""
    return {"symbol": symbol or None, "mint": mint, "decimals": decimals}


def _amounts_json(order: orders_pb2.Order, confirmed: bool) -> dict[str, Any]:
    """The order's mode and amounts in: exact-in spends amountIn; exact-out receives exactly
    targetAmountOut and reports the input spent (amountIn) once confirmed."""
    spec = order.spec
    exact_out = spec.amount_out > 0
    spent = order.amount_in if confirmed and order.amount_in else None
    amount_in = spent if exact_out else spec.amount_in
    return {
        "exactOut": exact_out,
        "amountIn": None if amount_in is None else format_amount(amount_in, spec.input_decimals),
        "amountInRaw": None if amount_in is None else str(amount_in),
        "amountInSpent": None if spent is None else format_amount(spent, spec.input_decimals),
        "amountInSpentRaw": None if spent is None else str(spent),
        "targetAmountOut": format_amount(spec.amount_out, spec.output_decimals) if exact_out else None,
        "targetAmountOutRaw": str(spec.amount_out) if exact_out else None,
    }


def order_json(
    order: orders_pb2.Order, markets: Markets | None = None, with_events: bool = False
) -> dict[str, Any]:
    spec = order.spec
    # route_json holds the latest routing decision: {"quotes": [...], "route": {...}}
    routing: dict[str, Any] = json.loads(order.route_json) if order.route_json else {}
    route = routing.get("route")
    quotes = routing.get("quotes", [])
    confirmed = order.status == orders_pb2.ORDER_STATUS_CONFIRMED
    doc: dict[str, Any] = {
        "orderId": order.order_id,
        "status": lifecycle.name_of(order.status),
        "tokenIn": _token_json(spec.input_symbol, spec.input_mint, spec.input_decimals, markets),
        "tokenOut": _token_json(spec.output_symbol, spec.output_mint, spec.output_decimals, markets),
        # exact-out ("amountOut" given): amountIn is what the swap spent, once confirmed
        **_amounts_json(order, confirmed),
        "slippageBps": spec.slippage_bps,
        "maxPriceImpactBps": spec.max_price_impact_bps or None,
        "quoteId": spec.quote_id or None,
        "type": "market",
        **resting_json(spec),
        "quotes": quotes,
        "route": route,
        "amountOut": format_amount(order.amount_out, spec.output_decimals) if confirmed else None,
        "amountOutRaw": str(order.amount_out) if confirmed else None,
        "dex": order.dex or None,
        "txHash": order.tx_hash or None,
        "executedPrice": order.executed_price or None,
        "costs": costs_json(order.cost, spec) if order.HasField("cost") else None,
        "failureReason": order.failure_reason or None,
        "attempts": order.attempts,
        "lastSeq": order.last_seq,
        "createdAt": iso_ms_from_us(order.created_at_us),
        "updatedAt": iso_ms_from_us(order.updated_at_us),
    }
    if with_events:
        doc["events"] = [
            {k: v for k, v in event_json(e).items() if k not in ("type", "orderId")} for e in order.events
        ]
    return doc
