"""The Router through a real gRPC server, reading pools from the real simulated chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from common.amounts import min_out
from common.grpc_client import open_channel
from common.markets import load_markets
from orderengine.v1 import router_pb2, router_pb2_grpc
from router_svc.pools import PoolBook
from tests.engine import Engine, engine

SOL = "So11111111111111111111111111111111111111112"


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    async with engine(make_settings(), persistence=False, executor=False) as e:
        yield e


@pytest.fixture
async def stub(eng: Engine) -> AsyncIterator[router_pb2_grpc.RouterStub]:
    channel = open_channel(eng.settings.router_addr)
    yield router_pb2_grpc.RouterStub(channel)
    await channel.close()


def mint(eng: Engine, symbol: str) -> str:
    token = load_markets(eng.settings.markets_path).token(symbol)
    assert token is not None
    return token.mint


@pytest.mark.parametrize(
    ("token_in", "token_out", "amount"), [("SOL", "USDC", 10**9), ("USDC", "SOL", 150 * 10**6)]
)
async def test_routes_to_the_venue_with_more_output(
    eng: Engine, stub: router_pb2_grpc.RouterStub, token_in: str, token_out: str, amount: int
) -> None:
    resp = await stub.Quote(
        router_pb2.QuoteRequest(
            input_mint=mint(eng, token_in),
            output_mint=mint(eng, token_out),
            amount_in=amount,
            slippage_bps=100,
            request_id="r1",
        )
    )
    assert resp.request_id == "r1"
    assert {q.venue for q in resp.quotes} == {"raydium_cpmm", "meteora_dlmm"}
    assert all(not q.error and q.amount_out > 0 for q in resp.quotes)
    best = max(resp.quotes, key=lambda q: q.amount_out)
    assert len(resp.route.legs) == 1
    assert resp.route.legs[0].venue == best.venue
    assert resp.route.amount_out == best.amount_out
    assert resp.route.min_amount_out == min_out(best.amount_out, 100)


async def test_either_venue_can_win(eng: Engine, stub: router_pb2_grpc.RouterStub) -> None:
    """The genesis prices DLMM above CPMM for SOL→USDC, so selling SOL and buying SOL pick different
    venues: the router must follow the output, not a favourite."""
    sell = await stub.Quote(
        router_pb2.QuoteRequest(
            input_mint=SOL, output_mint=mint(eng, "USDC"), amount_in=10**9, slippage_bps=50
        )
    )
    buy = await stub.Quote(
        router_pb2.QuoteRequest(
            input_mint=mint(eng, "USDC"), output_mint=SOL, amount_in=150 * 10**6, slippage_bps=50
        )
    )
    assert {sell.route.legs[0].venue, buy.route.legs[0].venue} == {"raydium_cpmm", "meteora_dlmm"}


async def test_quote_stream(eng: Engine, stub: router_pb2_grpc.RouterStub) -> None:
    usdc = mint(eng, "USDC")

    async def requests():  # type: ignore[no-untyped-def]
        for i in range(20):
            yield router_pb2.QuoteRequest(
                request_id=str(i),
                input_mint=SOL,
                output_mint=usdc,
                amount_in=10**8 * (i + 1),
                slippage_bps=50,
            )
        yield router_pb2.QuoteRequest(
            request_id="bad", input_mint=SOL, output_mint=SOL, amount_in=1, slippage_bps=50
        )

    got = {r.request_id: r async for r in stub.QuoteStream(requests())}
    assert len(got) == 21
    assert all(got[str(i)].response.route.amount_out > 0 for i in range(20))
    assert got["bad"].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"input_mint": "", "output_mint": SOL, "amount_in": 1, "slippage_bps": 50}, "input_mint"),
        ({"input_mint": "nope", "output_mint": SOL, "amount_in": 1, "slippage_bps": 50}, "input_mint"),
        ({"input_mint": SOL, "output_mint": SOL, "amount_in": 1, "slippage_bps": 50}, "output_mint"),
        ({"input_mint": SOL, "output_mint": "USDC", "amount_in": 1, "slippage_bps": 50}, "output_mint"),
        (
            {
                "input_mint": SOL,
                "output_mint": "11111111111111111111111111111112",
                "amount_in": 0,
                "slippage_bps": 50,
            },
            "amount_in",
        ),
        (
            {
                "input_mint": SOL,
                "output_mint": "11111111111111111111111111111112",
                "amount_in": 5,
                "slippage_bps": 0,
            },
            "slippage_bps",
        ),
    ],
)
async def test_invalid_arguments(stub: router_pb2_grpc.RouterStub, request_kwargs: dict, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Quote(router_pb2.QuoteRequest(**request_kwargs))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(field)


async def test_an_amount_that_buys_nothing_is_refused_naming_the_amount(
    eng: Engine, stub: router_pb2_grpc.RouterStub
) -> None:
    """1 lamport buys 0 USDC on every venue: refused at routing for good (INVALID_ARGUMENT, not
    the transient FAILED_PRECONDITION a worker would retry), with the reason."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Quote(
            router_pb2.QuoteRequest(
                input_mint=SOL, output_mint=mint(eng, "USDC"), amount_in=1, slippage_bps=50
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert details.startswith("amount_in: the amount is too small: no venue pays anything for it"), details


async def test_unknown_pair_is_not_found(stub: router_pb2_grpc.RouterStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Quote(
            router_pb2.QuoteRequest(
                input_mint=SOL, output_mint="11111111111111111111111111111112", amount_in=10, slippage_bps=50
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pool_state_is_read_once_per_refresh(eng: Engine, stub: router_pb2_grpc.RouterStub) -> None:
    usdc = mint(eng, "USDC")
    await stub.Quote(
        router_pb2.QuoteRequest(input_mint=SOL, output_mint=usdc, amount_in=10**9, slippage_bps=50)
    )
    chain = eng.router.chain
    before = chain.calls.get("getMultipleAccounts", 0)
    import asyncio

    await asyncio.gather(
        *(
            stub.Quote(
                router_pb2.QuoteRequest(
                    input_mint=SOL, output_mint=usdc, amount_in=10**6 * (i + 1), slippage_bps=50
                )
            )
            for i in range(50)
        )
    )
    assert chain.calls.get("getMultipleAccounts", 0) - before <= 2


async def test_the_pools_are_read_again_before_the_snapshot_expires(eng: Engine) -> None:
    """A snapshot served in the last quarter of its lifetime starts the next read in the background;
    the quote after its end finds the new one without waiting."""
    book = PoolBook(eng.router.chain, load_markets(eng.settings.markets_path), refresh_s=0.4)
    first = await book.snapshot()
    await asyncio.sleep(0.2)
    assert await book.snapshot() is first and book.refreshes == 1
    await asyncio.sleep(0.13)
    assert await book.snapshot() is first  # served at once, the next read started
    assert await book.snapshot() is first  # still one read
    await asyncio.sleep(0.05)
    assert book.refreshes == 2
    await asyncio.sleep(0.1)  # past the first snapshot's lifetime
    second = await book.snapshot()
    assert second is not first and second.taken_at > first.taken_at and book.refreshes == 2

    off = PoolBook(eng.router.chain, load_markets(eng.settings.markets_path), 0.4, renew_ahead=0)
    first = await off.snapshot()
    await asyncio.sleep(0.33)
    assert await off.snapshot() is first
    await asyncio.sleep(0.05)
    assert off.refreshes == 1  # CACHE_RENEW_AHEAD=0: read again only once expired
