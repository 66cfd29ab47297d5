"""Sniper orders: the watch that fires them when a pool of their pair appears.

A sniper order rests `open` (pending → open, like a limit order) for a pair that may have no pool
yet. One worker (a Redis lease of its own, `<prefix>:sniper`, beside the trigger loop's) runs the
watch: every SNIPER_INTERVAL_MS it asks the router (`WatchPools`) for the pools of the pairs of the
open sniper orders — the router scans both programs with `getProgramAccounts` and memcmp filters on
the pool accounts' mints, and makes any new pool quotable at once — and for each order:

- a pool of the pair must swap now (enabled, open time reached) and hold at least the order's
  `min_liquidity` of the order's input mint (the side the order pays with: "at least 50 SOL in the
  pool" for a SOL → NEW order);
- the order's own amount is then quoted (the router's best route over every pool of the pair); with
  a `max_price` (the most input paid per whole output token) the route must pay at least
  `sniper_floor`, the output that price allows for the order's amount, rounded up.

A passing order triggers with a `routing` event (one AppendEvents call for the pass; persistence
takes each seq once, so a trigger racing a cancel, an expiry or another watch has one winner, and
an order triggers at most once). It does not queue behind market orders: the watch drives it at
once in this worker, under the order's lock as a job is, outside the worker's concurrency slots.
Its route's min-out is raised to the price floor (the chain enforces `max_price`), and the executor
pays SNIPER_PRIORITY_FEE_PERCENTILE for its swap. Should this worker die mid-way, the reconciler
re-queues the order like any unfinished one. An order whose expiry comes first is expired here, in
the same AppendEvents call.

The open sniper orders are kept in memory by worker.open_orders (read whole from Postgres when this
worker takes the lease, then kept current by the committed events), so a sniper order placed now is
watched from the next pass, and a pass reads nothing from Postgres; the pool scan runs every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from common.amounts import format_amount
from common.timefmt import iso_ms_from_us
from orderengine.v1 import orders_pb2, router_pb2
from worker.lease import RELEASE_IF_MINE, Lease
from worker.links import LinkBroken, QuoteFailed
from worker.open_orders import OpenOrders
from worker.triggers import TriggerLoop

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)

S = orders_pb2
SNIPER = S.ORDER_TYPE_SNIPER
QUOTE_TIMEOUT_S = 5.0
WATCH_TIMEOUT_S = 5.0
STOP_GRACE_S = 5.0


def sniper_floor(spec: orders_pb2.OrderSpec) -> int:
    """The least output a sniper order accepts: its whole amount at `max_price` (input base units
    per one whole output token), rounded up; 0 without a price bound (or for another type)."""
    if spec.order_type != SNIPER or not spec.max_price:
        return 0
    return int(-(-spec.amount_in * 10**spec.output_decimals // spec.max_price))


def input_reserve(pool: router_pb2.PoolLiquidity, spec: orders_pb2.OrderSpec) -> int:
    """The pool's holdings of the order's input mint."""
    return pool.reserve_a if pool.mint_a == spec.input_mint else pool.reserve_b


def deep_pools(
    pools: list[router_pb2.PoolLiquidity], spec: orders_pb2.OrderSpec
) -> list[router_pb2.PoolLiquidity]:
    """The pools that swap now and hold at least the order's min_liquidity of its input, deepest
    first."""
    deep = [p for p in pools if p.tradable and input_reserve(p, spec) >= spec.min_liquidity]
    return sorted(deep, key=lambda p: -input_reserve(p, spec))


class SniperWatch:
    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.interval_s = worker.settings.sniper_interval_ms / 1000
        lease_ms = max(int(self.interval_s * 5000), 3000)
        self.lease = Lease(
            worker.redis, f"{worker.keys.prefix}:sniper", worker.name, lease_ms, "sniper watch"
        )
        self.open = OpenOrders(worker, (SNIPER,), "sniper")  # the open sniper orders, kept by events
        self.passes = 0
        self._driving: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await self.open.lead(self.lease, self.interval_s, self.tick)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Lets the orders it drives finish for up to `grace_s` (a swap in flight is followed to its
        end rather than left to recovery), then cancels the rest."""
        if self._driving:
            await asyncio.wait(list(self._driving), timeout=grace_s)
        for task in list(self._driving):
            task.cancel()
        await self.open.forget()
        with contextlib.suppress(aioredis.RedisError):
            await self.lease.release()

    async def tick(self) -> None:
        """One pass: scan the pairs' pools, trigger the orders they satisfy, drive those at once."""
        self.passes += 1
        if not await self.open.refresh():
            return  # no events channel: the open orders cannot be kept current; wait for Redis
        now_us = int(time.time() * 1_000_000)
        orders = list(self.open.book.orders.values())
        live = [o for o in orders if o.spec.expires_at_us > now_us]
        expired = [o for o in orders if o.spec.expires_at_us <= now_us]
        events = [
            self._event(
                o,
                S.ORDER_STATUS_EXPIRED,
                {"reason": f"expired at {iso_ms_from_us(o.spec.expires_at_us)} before it triggered"},
            )
            for o in expired
        ]
        fired = await self._fire(live, events) if live else []
        if not events:
            return
        response = await self.open.append(events)
        by_id = {order.order_id: order for order in fired}
        for event, result in zip(events, response.results, strict=True):
            order = by_id.get(event.order_id)
            if order is None or result.code != 0:
                continue  # an expiry, or cancelled / expired / triggered elsewhere first
            order.status = S.ORDER_STATUS_ROUTING
            order.last_seq = result.event.seq
            task = asyncio.create_task(self._drive(order), name=f"sniper-{order.order_id}")
            self._driving.add(task)
            task.add_done_callback(self._driving.discard)
        log.info("sniper pass", extra={"open": len(live), "triggered": len(fired), "expired": len(expired)})

    async def _fire(
        self, live: list[orders_pb2.Order], events: list[orders_pb2.NewEvent]
    ) -> list[orders_pb2.Order]:
        """Scans the pools of the live orders' pairs; appends a trigger event for each order they
        satisfy now and returns those orders."""
        pairs: dict[frozenset[str], router_pb2.PoolPair] = {}
        for order in live:
            key = frozenset((order.spec.input_mint, order.spec.output_mint))
            pairs.setdefault(
                key, router_pb2.PoolPair(mint_a=order.spec.input_mint, mint_b=order.spec.output_mint)
            )
        watched = await self.w.router.WatchPools(
            router_pb2.WatchPoolsRequest(pairs=list(pairs.values())), timeout=WATCH_TIMEOUT_S
        )
        by_pair: dict[frozenset[str], list[router_pb2.PoolLiquidity]] = {}
        for pool in watched.pools:
            by_pair.setdefault(frozenset((pool.mint_a, pool.mint_b)), []).append(pool)
        candidates: list[tuple[orders_pb2.Order, router_pb2.PoolLiquidity]] = []
        for order in live:
            deep = deep_pools(
                by_pair.get(frozenset((order.spec.input_mint, order.spec.output_mint)), []), order.spec
            )
            if deep:
                candidates.append((order, deep[0]))
        if not candidates:
            return []
        quotes = await asyncio.gather(
            *(self._quote(order) for order, _ in candidates), return_exceptions=True
        )
        fired: list[orders_pb2.Order] = []
        for (order, pool), quote in zip(candidates, quotes, strict=True):
            if isinstance(quote, BaseException):
                if not isinstance(quote, (QuoteFailed, LinkBroken, TimeoutError)):
                    raise quote
                continue  # no quote for this amount now: the next pass tries again
            floor = sniper_floor(order.spec)
            if quote.route.amount_out == 0 or quote.route.amount_out < floor:
                continue  # above max_price for now
            trigger = {
                "type": "sniper",
                "venue": pool.venue,
                "pool": pool.pool,
                "liquidity": format_amount(input_reserve(pool, order.spec), order.spec.input_decimals),
                "slot": watched.slot,
                "amountOut": format_amount(quote.route.amount_out, order.spec.output_decimals),
            }
            if floor:
                trigger["minAmountOut"] = format_amount(floor, order.spec.output_decimals)
            events.append(self._event(order, S.ORDER_STATUS_ROUTING, {"attempt": 0, "trigger": trigger}))
            fired.append(order)
        return fired

    async def _quote(self, order: orders_pb2.Order) -> router_pb2.QuoteResponse:
        request = router_pb2.QuoteRequest(
            request_id=f"sniper:{self.passes}:{order.order_id}",
            input_mint=order.spec.input_mint,
            output_mint=order.spec.output_mint,
            amount_in=order.spec.amount_in,
            slippage_bps=order.spec.slippage_bps,
        )
        async with asyncio.timeout(QUOTE_TIMEOUT_S):
            return await self.w.router_link.quote(request)

    async def _drive(self, order: orders_pb2.Order) -> None:
        """Drives a triggered order here and now, under its lock (a job that finds the lock taken
        leaves the order to this driver)."""
        from worker.driver import OrderDriver, Superseded  # the driver imports this module

        lock = self.w.keys.lock(order.order_id)
        holder = f"{self.w.name}:sniper"
        ttl = self.w.settings.order_lock_ttl_ms
        try:
            if not await self.w.redis.set(lock, holder, nx=True, px=ttl):
                return  # another driver has it already
            keeper = asyncio.create_task(self._keep(lock, ttl))
            try:
                await OrderDriver(self.w, order).run()
            finally:
                keeper.cancel()
                with contextlib.suppress(aioredis.RedisError):
                    await self.w.redis.eval(RELEASE_IF_MINE, 1, lock, holder)
        except Superseded as exc:
            log.info("sniper order superseded by another driver", extra={"detail": str(exc)})
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the reconciler re-queues an order left unfinished
            log.exception(
                "driving a sniper order failed; left to recovery", extra={"order_id": order.order_id}
            )

    async def _keep(self, lock: str, ttl: int) -> None:
        while True:
            await asyncio.sleep(ttl / 3000)
            with contextlib.suppress(aioredis.RedisError):
                await self.w.redis.pexpire(lock, ttl)

    _event = staticmethod(TriggerLoop._event)
