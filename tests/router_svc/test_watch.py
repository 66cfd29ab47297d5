"""WatchPools through a real Router gRPC server on the real simulated chain: a pair with no pool
answers none; a pool made afterwards through the CPMM program's `initialize` (simCreatePool) is
found by the scan with its exact holdings, is reported not tradable before its open time and
tradable after, and is quotable without restarting the router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction

import grpc
import httpx
import pytest
from solders.pubkey import Pubkey

from common.dex import synthetic
from common.grpc_client import open_channel
from common.markets import load_markets
from orderengine.v1 import router_pb2, router_pb2_grpc
from simchain.ledger import Account
from tests.engine import Engine, engine
from tests.router_svc.test_servicer import mint

SOL, NEW = 10**9, 10**6


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    # 60 s slots: the tip moves only when the test warps it
    async with engine(make_settings(SIM_SLOT_MS="60000"), persistence=False, executor=False) as e:
        yield e


@pytest.fixture
async def stub(eng: Engine) -> AsyncIterator[router_pb2_grpc.RouterStub]:
    channel = open_channel(eng.settings.router_addr)
    yield router_pb2_grpc.RouterStub(channel)
    await channel.close()


async def sim(eng: Engine, method: str, params: list[object]) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            eng.sim.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        )
    return r.json()["result"]  # type: ignore[no-any-return]


async def test_a_pool_created_later_is_found_and_becomes_quotable(
    eng: Engine, stub: router_pb2_grpc.RouterStub
) -> None:
    pair = router_pb2.PoolPair(mint_a=mint(eng, "SOL"), mint_b=mint(eng, "NEW"))
    request = router_pb2.WatchPoolsRequest(pairs=[pair])
    assert list((await stub.WatchPools(request, timeout=5)).pools) == []
    quote = router_pb2.QuoteRequest(
        input_mint=pair.mint_a, output_mint=pair.mint_b, amount_in=SOL, slippage_bps=100, request_id="q"
    )
    with pytest.raises(grpc.aio.AioRpcError) as no_pool:
        await stub.Quote(quote, timeout=5)
    assert no_pool.value.code() == grpc.StatusCode.NOT_FOUND

    made = await sim(
        eng,
        "simCreatePool",
        [{"venue": "raydium_cpmm", "mintA": pair.mint_a, "mintB": pair.mint_b, "amountA": 30 * SOL,
          "amountB": 6_000 * NEW}],
    )  # fmt: skip
    found = (await stub.WatchPools(request, timeout=5)).pools
    assert [(p.venue, p.pool, p.mint_a, p.mint_b) for p in found] == [
        ("raydium_cpmm", made["pool"], pair.mint_a, pair.mint_b)
    ]
    assert (found[0].reserve_a, found[0].reserve_b) == (30 * SOL, 6_000 * NEW)
    assert (found[0].tradable, found[0].open_time) == (False, made["openTime"])  # opens a second later
    await sim(eng, "simWarpSlots", [{"n": 1}])
    found = (await stub.WatchPools(request, timeout=5)).pools
    assert found[0].tradable
    answer = await stub.Quote(quote, timeout=5)
    assert [leg.pool for leg in answer.route.legs] == [made["pool"]]
    assert 190 * NEW < answer.route.amount_out < 200 * NEW  # 200 NEW per SOL less the fee and impact


async def test_bad_requests_name_the_field(stub: router_pb2_grpc.RouterStub, eng: Engine) -> None:
    sol = mint(eng, "SOL")
    cases = [
        (router_pb2.WatchPoolsRequest(), "pairs"),
        (
            router_pb2.WatchPoolsRequest(pairs=[router_pb2.PoolPair(mint_a=sol, mint_b="nope")]),
            "pairs[0].mint_b",
        ),
        (
            router_pb2.WatchPoolsRequest(pairs=[router_pb2.PoolPair(mint_a=sol, mint_b=sol)]),
            "pairs[0].mint_b",
        ),
        (router_pb2.WatchPoolsRequest(pairs=[router_pb2.PoolPair(mint_a=sol, mint_b=sol)] * 101), "pairs"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.WatchPools(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or ""), err.value.details()


async def test_a_plain_quote_learns_a_pair_created_after_start(
    eng: Engine, stub: router_pb2_grpc.RouterStub
) -> None:
    """No WatchPools: a quote for a pair with no known pool looks it up on chain (at most once a
    second per pair), so a pool created at runtime is quotable on any router replica."""
    usdc, new = mint(eng, "USDC"), mint(eng, "NEW")
    quote = router_pb2.QuoteRequest(
        input_mint=usdc, output_mint=new, amount_in=100 * NEW, slippage_bps=100, request_id="q"
    )
    with pytest.raises(grpc.aio.AioRpcError) as no_pool:
        await stub.Quote(quote, timeout=5)
    assert no_pool.value.code() == grpc.StatusCode.NOT_FOUND
    made = await sim(
        eng,
        "simCreatePool",
        [
            {
                "venue": "raydium_cpmm",
                "mintA": usdc,
                "mintB": new,
                "amountA": 10_000 * NEW,
                "amountB": 5_000 * NEW,
            }
        ],
    )
    await sim(eng, "simWarpSlots", [{"n": 1}])  # open
    with pytest.raises(grpc.aio.AioRpcError) as too_soon:
        await stub.Quote(quote, timeout=5)  # the pair was looked up less than a second ago
    assert too_soon.value.code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(1.05)
    answer = await stub.Quote(quote, timeout=5)
    assert [leg.pool for leg in answer.route.legs] == [made["pool"]]
    assert 45 * NEW < answer.route.amount_out < 50 * NEW  # 0.5 NEW per USDC less the fee and impact


async def test_the_watch_covers_dlmm_pairs_too(eng: Engine, stub: router_pb2_grpc.RouterStub) -> None:
    """The simulated chain makes CPMM pools only through the program; a Meteora DLMM pair of SOL/NEW
    put straight into its ledger (in the pair's own mint order, NEW first) is found by the same
    scan, with its holdings, and quoted."""
    sol, new = mint(eng, "SOL"), mint(eng, "NEW")
    program = load_markets(eng.settings.markets_path).program_id("meteora_dlmm")
    accounts = synthetic.make_dlmm_pair(
        program, Pubkey.from_string(new), Pubkey.from_string(sol), 6, 9, Fraction("0.005"), bin_step=10,
        liquidity_x=20_000 * NEW, liquidity_y=100 * SOL, bins_each_side=30, include_mints=False,
    )  # fmt: skip
    for key, (owner, data, lamports) in accounts.items():
        eng.sim.node.ledger.put(key, Account(lamports, owner, data))
    pair_address = str(next(iter(accounts)))
    found = (
        await stub.WatchPools(
            router_pb2.WatchPoolsRequest(pairs=[router_pb2.PoolPair(mint_a=sol, mint_b=new)]), timeout=5
        )
    ).pools
    assert [(p.venue, p.pool, p.tradable) for p in found] == [("meteora_dlmm", pair_address, True)]
    assert 99 * SOL <= found[0].reserve_a <= 100 * SOL and 19_900 * NEW <= found[0].reserve_b <= 20_000 * NEW
    answer = await stub.Quote(
        router_pb2.QuoteRequest(
            input_mint=sol, output_mint=new, amount_in=SOL, slippage_bps=100, request_id="d"
        ),
        timeout=5,
    )
    assert [(leg.venue, leg.pool) for leg in answer.route.legs] == [("meteora_dlmm", pair_address)]
    assert 190 * NEW < answer.route.amount_out < 200 * NEW
