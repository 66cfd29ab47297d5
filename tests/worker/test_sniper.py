"""The sniper watch's integer rules: the price floor a sniper order's route must pay, and which
pools satisfy its minimum liquidity (of its input mint, whichever side of the pair that is). Then
the watch itself through the real worker, router, executor, persistence and simulated chain."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from common.markets import load_markets
from orderengine.v1 import orders_pb2, orders_pb2_grpc, router_pb2
from tests.engine import Engine, engine
from tests.worker.test_triggers import NAMES, place, spec_of, wait_status, wait_terminal
from worker.consumer import Worker
from worker.sniper import deep_pools, sniper_floor

SOL, NEW = "So11111111111111111111111111111111111111112", "NewMint1111111111111111111111111111111111111"


def spec(max_price: int = 0, min_liquidity: int = 50 * 10**9, amount_in: int = 10**9) -> orders_pb2.OrderSpec:
    return orders_pb2.OrderSpec(
        input_mint=SOL,
        output_mint=NEW,
        amount_in=amount_in,
        input_decimals=9,
        output_decimals=6,
        order_type=orders_pb2.ORDER_TYPE_SNIPER,
        min_liquidity=min_liquidity,
        max_price=max_price,
    )


def test_the_floor_is_the_amount_at_the_max_price_rounded_up() -> None:
    # 1 SOL at most 0.005 SOL per NEW: at least 200 NEW
    assert sniper_floor(spec(max_price=5_000_000)) == 200 * 10**6
    # 1 SOL at most 0.003 SOL per NEW: 333.333333… NEW, rounded up to the base unit
    assert sniper_floor(spec(max_price=3_000_000)) == 333_333_334
    assert sniper_floor(spec()) == 0  # no price bound
    limit = spec(max_price=5_000_000)
    limit.order_type = orders_pb2.ORDER_TYPE_LIMIT
    assert sniper_floor(limit) == 0


def pool(name: str, sol: int, tradable: bool = True, sol_first: bool = True) -> router_pb2.PoolLiquidity:
    a, b = (SOL, NEW) if sol_first else (NEW, SOL)
    ra, rb = (sol, 1) if sol_first else (1, sol)
    return router_pb2.PoolLiquidity(
        pool=name, mint_a=a, mint_b=b, reserve_a=ra, reserve_b=rb, tradable=tradable
    )


def test_deep_pools_hold_the_minimum_of_the_input_and_trade_now() -> None:
    pools = [
        pool("shallow", 49 * 10**9),
        pool("exact", 50 * 10**9, sol_first=False),
        pool("closed", 500 * 10**9, tradable=False),
        pool("deep", 80 * 10**9),
    ]
    assert [p.pool for p in deep_pools(pools, spec())] == ["deep", "exact"]
    assert deep_pools(pools[:1], spec()) == []


# --- through the engine ----------------------------------------------------------------------------


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(SIM_SLOT_MS="20", POOL_REFRESH_MS="20", SNIPER_INTERVAL_MS="30")
    async with engine(settings) as e:
        yield e


def sniper(
    eng: Engine, token_in: str, amount: int, min_liquidity: int, max_price: int = 0, ttl_s: float = 300
):  # type: ignore[no-untyped-def]
    expires = int((time.time() + ttl_s) * 1_000_000)
    return spec_of(
        eng, token_in, "NEW", amount, order_type=orders_pb2.ORDER_TYPE_SNIPER, min_liquidity=min_liquidity,
        max_price=max_price, expires_at_us=expires,
    )  # fmt: skip


async def create_pool(eng: Engine, token_in: str, amount_in: int, amount_new: int) -> str:
    markets = load_markets(eng.settings.markets_path)
    tin, new = markets.token(token_in), markets.token("NEW")
    assert tin and new
    params = {
        "venue": "raydium_cpmm",
        "mintA": tin.mint,
        "mintB": new.mint,
        "amountA": amount_in,
        "amountB": amount_new,
    }
    async with httpx.AsyncClient() as client:
        r = await client.post(
            eng.sim.url, json={"jsonrpc": "2.0", "id": 1, "method": "simCreatePool", "params": [params]}
        )
    return str(r.json()["result"]["pool"])


async def test_the_watch_fires_once_on_the_new_pool_and_leaves_the_cancelled_and_expired(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersAsyncStub
) -> None:
    usdt = 10**6
    live = await place(eng, orders, sniper(eng, "USDT", 20 * usdt, 1_000 * usdt, max_price=2 * usdt))
    twin = await place(eng, orders, sniper(eng, "USDT", 20 * usdt, 1_000 * usdt))
    short = await place(eng, orders, sniper(eng, "USDT", 20 * usdt, 1_000 * usdt, ttl_s=1.0))
    for oid in (live, twin, short):
        await wait_status(orders, oid, orders_pb2.ORDER_STATUS_OPEN)
    await orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=twin), timeout=5)
    await asyncio.sleep(1.2)  # the short one expires before any pool
    pool = await create_pool(eng, "USDT", 5_000 * usdt, 5_000 * usdt)  # 1 USDT per NEW: within 2

    done = await wait_terminal(orders, live)
    names = [NAMES[e.status] for e in done.events]
    assert names == ["pending", "open", "routing", "routing", "building", "submitted", "confirmed"], names
    trigger = json.loads(done.events[2].data_json)["trigger"]
    assert (trigger["type"], trigger["pool"], trigger["liquidity"]) == ("sniper", pool, "5000")
    floor = sniper_floor(done.spec)
    assert floor == 10 * 10**6  # 20 USDT at 2 USDT per NEW
    assert done.route.min_amount_out >= floor and done.amount_out >= floor
    for oid, status in ((twin, orders_pb2.ORDER_STATUS_CANCELLED), (short, orders_pb2.ORDER_STATUS_EXPIRED)):
        order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid, with_events=True), timeout=5)
        assert order.status == status
        assert [NAMES[e.status] for e in order.events][-1] in ("cancelled", "expired")
        assert not any(e.status == orders_pb2.ORDER_STATUS_ROUTING for e in order.events)
