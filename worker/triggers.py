"""Resting orders (limit, stop): the trigger loop and the integer rules it and the driver share.

An open order waits here, never in the job stream. One worker (a Redis lease, as for the
reconciler) runs the loop. It keeps the open limit and stop orders in memory (worker.book: per pair,
thresholds sorted; expiries in a heap), read whole from Postgres — the truth, so they survive any
restart — when it takes the lease, and kept current in between by the committed events
(worker.open_orders). Every TRIGGER_INTERVAL_MS (a slot) one pass asks the router — on the worker's
QuoteStream, whose quotes share the router's per-slot pool snapshot — for each pair's market price:
the best route's output for one whole input token. Against that one price:

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
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from prometheus_client import Gauge, Histogram

from common import jobs
from common.amounts import format_amount
from common.timefmt import iso_ms_from_us
from gateway.views import resting_json

__all__ = ["TriggerLoop", "decide", "limit_out", "resting_json", "with_limit"]
from orderengine.v1 import orders_pb2, router_pb2, types_pb2
from worker.book import Pair, PairBook
from worker.lease import Lease
from worker.links import LinkBroken, QuoteFailed
from worker.open_orders import OpenOrders

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)

S = orders_pb2
LIMIT, STOP = S.ORDER_TYPE_LIMIT, S.ORDER_TYPE_STOP
PAGE = 200
QUOTE_TIMEOUT_S = 5.0

PASS_CPU = Histogram(
    "orderengine_trigger_pass_cpu_seconds",
    "On-CPU time of one trigger pass's own work (book upkeep, expiry, thresholds, events), its "
    "awaited calls left out.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
BOOK_SIZE = Gauge("orderengine_trigger_open_orders", "Open limit and stop orders in the trigger loop's book.")


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
    """For one pair's open orders and its market price: (stops that trigger, limit candidates), as
    the loop's book (worker.book.PairBook) finds them: prefixes of the sorted thresholds."""
    side = PairBook()
    by_id = {o.order_id: o for o in orders}
    for order in orders:
        side.add(order)
    stop_ids, limit_ids = side.due(market)
    return [by_id[i] for i in stop_ids], [by_id[i] for i in limit_ids]


class TriggerLoop:
    """Leadership (a Redis lease), the book, and one pass per interval: `tick`."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.interval_s = worker.settings.trigger_interval_ms / 1000
        lease_ms = max(int(self.interval_s * 5000), 3000)
        self.lease = Lease(
            worker.redis, f"{worker.keys.prefix}:triggers", worker.name, lease_ms, "trigger loop"
        )
        self.passes = 0
        self.open = OpenOrders(worker, (LIMIT, STOP), "trigger")
        self.book = self.open.book
        self.last_pass_cpu_s = 0.0  # on-CPU time of the last pass's own work (not its awaits)
        self._pass_cpu = 0.0

    async def run(self) -> None:
        await self.open.lead(self.lease, self.interval_s, self.tick)

    async def stop(self) -> None:
        await self.open.forget()
        with contextlib.suppress(aioredis.RedisError):
            await self.lease.release()

    # --- one pass -------------------------------------------------------------------------------
    async def tick(self) -> None:
        """One pass: bring the book up to date, expire, trigger, and queue what triggered."""
        self.passes += 1
        if not await self.open.refresh():
            return  # no events channel: the book cannot be kept current; wait for Redis
        cpu = time.thread_time()
        now_us = int(time.time() * 1_000_000)
        events = [
            self._event(
                order,
                S.ORDER_STATUS_EXPIRED,
                {"reason": f"expired at {iso_ms_from_us(order.spec.expires_at_us)} before it triggered"},
            )
            for order in self.book.expired(now_us)
        ]
        self._pass_cpu = time.thread_time() - cpu
        pairs = list(self.book.pairs.items())
        decided = await asyncio.gather(*(self._pair(pair, side) for pair, side in pairs))
        for pair_events in decided:
            events.extend(pair_events)
        self._measure()
        if not events:
            return
        # each triggered order is queued with itself as stored once its trigger is appended, so the
        # worker that drives it starts without reading it back (taken before the append: the book
        # lets go of an order once its trigger is published)
        stored = {e.order_id: self._stored(e) for e in events if e.status == S.ORDER_STATUS_ROUTING}
        response = await self.open.append(events)
        triggered = [
            (event.order_id, stored[event.order_id])
            for result, event in zip(response.results, events, strict=True)
            if result.code == 0 and event.status == S.ORDER_STATUS_ROUTING
        ]
        if triggered:
            await jobs.enqueue_many(self.w.redis, self.w.keys, triggered, hint=jobs.ORDER_FIELD)
        log.info(
            "trigger pass",
            extra={
                "open": len(self.book),
                "triggered": len(triggered),
                "decided": len(events),
                "cpuMs": round(self.last_pass_cpu_s * 1000, 3),
            },
        )

    def _measure(self) -> None:
        self.last_pass_cpu_s = self._pass_cpu
        PASS_CPU.observe(self._pass_cpu)
        BOOK_SIZE.set(len(self.book))

    async def _pair(self, pair: Pair, side: PairBook) -> list[orders_pb2.NewEvent]:
        """One pair at the market price of this pass's snapshot: the stops that trigger, and the
        limit candidates whose own amount pays their limit."""
        spec = self.book.orders[(side.limits or side.stops)[0][1]].spec
        try:
            market = await self._quote(
                spec.input_mint, spec.output_mint, 10**spec.input_decimals, f"market:{pair[0]}:{pair[1]}"
            )
        except (QuoteFailed, LinkBroken, TimeoutError) as exc:
            log.warning("no market price for a pair; its orders wait", extra={"error": type(exc).__name__})
            return []
        cpu = time.thread_time()
        price = market.route.amount_out
        stop_ids, candidate_ids = side.due(price)
        shown = format_amount(price, spec.output_decimals)
        trigger = {"type": "stop", "marketPrice": shown}
        events = [
            self._event(self.book.orders[oid], S.ORDER_STATUS_ROUTING, {"attempt": 0, "trigger": trigger})
            for oid in stop_ids
        ]
        candidates = [self.book.orders[oid] for oid in candidate_ids]
        self._pass_cpu += time.thread_time() - cpu
        quotes = await asyncio.gather(
            *(
                self._quote(o.spec.input_mint, o.spec.output_mint, o.spec.amount_in, o.order_id)
                for o in candidates
            ),
            return_exceptions=True,
        )
        cpu = time.thread_time()
        for order, quote in zip(candidates, quotes, strict=True):
            if isinstance(quote, BaseException):
                continue  # no quote for this amount now: it waits for the next pass
            floor = limit_out(order.spec)
            if quote.route.amount_out >= floor:
                fired = {
                    "type": "limit",
                    "marketPrice": shown,
                    "amountOut": format_amount(quote.route.amount_out, order.spec.output_decimals),
                    "limitAmountOut": format_amount(floor, order.spec.output_decimals),
                }
                events.append(self._event(order, S.ORDER_STATUS_ROUTING, {"attempt": 0, "trigger": fired}))
        self._pass_cpu += time.thread_time() - cpu
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

    def _stored(self, event: orders_pb2.NewEvent) -> bytes:
        """The order as stored once `event` (its trigger) is appended, serialized for its job; no
        hint (b"") if the book no longer holds it."""
        book_order = self.book.orders.get(event.order_id)
        if book_order is None:
            return b""
        stored = orders_pb2.Order()
        stored.CopyFrom(book_order)
        stored.status, stored.last_seq = event.status, event.seq
        return stored.SerializeToString()

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
