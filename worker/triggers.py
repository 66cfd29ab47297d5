"""Resting orders (limit, stop): the trigger loop and the integer rules it and the driver share.

An open order waits here, never in the job stream. One worker (a Redis lease, as for the
reconciler) runs the loop: every TRIGGER_INTERVAL_MS it reads the open orders (Postgres is the
truth, so they survive any restart), and for each pair asks the router — on the worker's QuoteStream,
whose quotes share the router's per-slot pool snapshot — for the market price: the best route's
output for one whole input token. Against that one price:

- a stop order (sell when the market falls) triggers once the market price is at or below its stop
  price; sorted by stop price, the triggered ones are a prefix;
- a limit order can only fill when the market price reaches its limit (a larger amount never gets a
  better price than one token, give or take its rounding), so the orders at or below the market are
  the candidates (a prefix of the limits sorted by price) and each candidate's own amount is quoted
  once to see whether it really pays the limit; the rest cost nothing;
- an order whose expiry has come is expired.

Every decision of a pass goes to persistence in one AppendEvents call: `routing` (the trigger) or
`expired` as the order's next event. Persistence takes each seq once and refuses a transition out of
a finished status, so a trigger racing a cancel, an expiry or a second loop has exactly one winner,
and nothing returns to `open`: an order triggers at most once. Triggered orders are queued (one
pipeline) for the drivers, which route them afresh; a triggered limit order's min-out is its limit.

Prices are integers: a trigger price is base units of the output mint per one whole input token
(10^input_decimals base units), exactly the decimal price the client gave.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import grpc
import redis.asyncio as aioredis

from common import jobs
from common.amounts import format_amount
from common.timefmt import iso_ms_from_us
from gateway.views import resting_json

__all__ = ["TriggerLoop", "decide", "limit_out", "resting_json", "with_limit"]
from orderengine.v1 import orders_pb2, router_pb2, types_pb2
from worker.lease import Lease
from worker.links import LinkBroken, QuoteFailed

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)

S = orders_pb2
LIMIT, STOP = S.ORDER_TYPE_LIMIT, S.ORDER_TYPE_STOP
PAGE = 200
QUOTE_TIMEOUT_S = 5.0


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def limit_out(spec: orders_pb2.OrderSpec) -> int:
    """What the order's whole amount yields at its trigger price, rounded up (a limit is a floor)."""
    return _ceil_div(spec.trigger_price * spec.amount_in, 10**spec.input_decimals)


def with_limit(route: types_pb2.Route, floor: int) -> types_pb2.Route:
    """The route with its min-out raised to `floor` (each leg's in proportion to its output, rounded
    up, so the legs' floors add up to at least `floor`); the chain then enforces the limit. The
    route must pay at least `floor`."""
    if route.amount_out < floor:
        raise ValueError("the route pays less than the floor")
    if route.min_amount_out >= floor:
        return route
    raised = types_pb2.Route()
    raised.CopyFrom(route)
    for leg in raised.legs:
        share = _ceil_div(floor * leg.amount_out, route.amount_out)
        leg.min_amount_out = min(leg.amount_out, max(leg.min_amount_out, share))
    raised.min_amount_out = sum(leg.min_amount_out for leg in raised.legs)
    return raised


def decide(
    orders: list[orders_pb2.Order], market: int
) -> tuple[list[orders_pb2.Order], list[orders_pb2.Order]]:
    """For one pair's live open orders and its market price: (stops that trigger, limit candidates).
    Sorted thresholds: each set is a prefix of a sorted list, found by bisection."""
    stops = sorted((o for o in orders if o.spec.order_type == STOP), key=lambda o: -o.spec.trigger_price)
    limits = sorted((o for o in orders if o.spec.order_type == LIMIT), key=lambda o: o.spec.trigger_price)
    fired = bisect.bisect_right([-o.spec.trigger_price for o in stops], -market)
    reachable = bisect.bisect_right([o.spec.trigger_price for o in limits], market)
    return stops[:fired], limits[:reachable]


class TriggerLoop:
    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.interval_s = worker.settings.trigger_interval_ms / 1000
        lease_ms = max(int(self.interval_s * 5000), 3000)
        self.lease = Lease(
            worker.redis, f"{worker.keys.prefix}:triggers", worker.name, lease_ms, "trigger loop"
        )
        self.passes = 0

    async def run(self) -> None:
        while not self.w.stopping.is_set():
            try:
                if await self.lease.hold():
                    await self.tick()
            except (grpc.aio.AioRpcError, aioredis.RedisError) as exc:
                log.warning("trigger pass interrupted", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await self.lease.release()

    async def open_orders(self) -> list[orders_pb2.Order]:
        orders: list[orders_pb2.Order] = []
        cursor = ""
        while True:
            page = await self.w.orders.ListOrders(
                orders_pb2.ListOrdersRequest(limit=PAGE, cursor=cursor, status=S.ORDER_STATUS_OPEN),
                timeout=10.0,
            )
            orders.extend(page.orders)
            cursor = page.next_cursor
            if not cursor:
                return orders

    async def tick(self) -> None:
        """One pass: expire, trigger, and queue what triggered."""
        self.passes += 1
        now_us = int(time.time() * 1_000_000)
        orders = await self.open_orders()
        events: list[orders_pb2.NewEvent] = []
        by_pair: dict[tuple[str, str], list[orders_pb2.Order]] = defaultdict(list)
        for order in orders:
            if order.spec.expires_at_us <= now_us:
                data = {
                    "reason": f"expired at {iso_ms_from_us(order.spec.expires_at_us)} before it triggered"
                }
                events.append(self._event(order, S.ORDER_STATUS_EXPIRED, data))
            else:
                by_pair[(order.spec.input_mint, order.spec.output_mint)].append(order)
        decided = await asyncio.gather(*(self._pair(pair, group) for pair, group in by_pair.items()))
        for pair_events in decided:
            events.extend(pair_events)
        if not events:
            return
        response = await self.w.orders.AppendEvents(
            orders_pb2.AppendEventsRequest(events=events), timeout=10.0
        )
        triggered = [
            (r.order_id, b"")
            for r, e in zip(response.results, events, strict=True)
            if r.code == 0 and e.status == S.ORDER_STATUS_ROUTING
        ]
        if triggered:
            await jobs.enqueue_many(self.w.redis, self.w.keys, triggered)
        log.info(
            "trigger pass",
            extra={"open": len(orders), "triggered": len(triggered), "decided": len(events)},
        )

    async def _pair(self, pair: tuple[str, str], orders: list[orders_pb2.Order]) -> list[orders_pb2.NewEvent]:
        spec = orders[0].spec
        try:
            market = await self._quote(
                spec.input_mint, spec.output_mint, 10**spec.input_decimals, f"market:{pair[0]}:{pair[1]}"
            )
        except (QuoteFailed, LinkBroken, TimeoutError) as exc:
            log.warning("no market price for a pair; its orders wait", extra={"error": type(exc).__name__})
            return []
        price = market.route.amount_out
        stops, candidates = decide(orders, price)
        shown = format_amount(price, spec.output_decimals)
        events = [
            self._event(
                o, S.ORDER_STATUS_ROUTING, {"attempt": 0, "trigger": {"type": "stop", "marketPrice": shown}}
            )
            for o in stops
        ]
        quotes = await asyncio.gather(
            *(
                self._quote(o.spec.input_mint, o.spec.output_mint, o.spec.amount_in, o.order_id)
                for o in candidates
            ),
            return_exceptions=True,
        )
        for order, quote in zip(candidates, quotes, strict=True):
            if isinstance(quote, BaseException):
                continue  # no quote for this amount now: it waits for the next pass
            floor = limit_out(order.spec)
            if quote.route.amount_out >= floor:
                trigger = {
                    "type": "limit",
                    "marketPrice": shown,
                    "amountOut": format_amount(quote.route.amount_out, order.spec.output_decimals),
                    "limitAmountOut": format_amount(floor, order.spec.output_decimals),
                }
                events.append(self._event(order, S.ORDER_STATUS_ROUTING, {"attempt": 0, "trigger": trigger}))
        return events

    async def _quote(
        self, input_mint: str, output_mint: str, amount: int, tag: str
    ) -> router_pb2.QuoteResponse:
        request = router_pb2.QuoteRequest(
            request_id=f"trigger:{self.passes}:{tag}",
            input_mint=input_mint,
            output_mint=output_mint,
            amount_in=amount,
            slippage_bps=1,
        )
        async with asyncio.timeout(QUOTE_TIMEOUT_S):
            return await self.w.router_link.quote(request)

    @staticmethod
    def _event(
        order: orders_pb2.Order, status: orders_pb2.OrderStatus.ValueType, data: dict[str, Any]
    ) -> orders_pb2.NewEvent:
        return orders_pb2.NewEvent(
            order_id=order.order_id,
            seq=order.last_seq + 1,
            status=status,
            data_json=json.dumps(data, separators=(",", ":")),
        )
