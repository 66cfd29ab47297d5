"""The sniper watch's integer rules: the price floor a sniper order's route must pay, and which
pools satisfy its minimum liquidity (of its input mint, whichever side of the pair that is)."""

from __future__ import annotations

from orderengine.v1 import orders_pb2, router_pb2
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
