"""Meteora DLMM swap2 executed by the simulated chain with common.dex's exact bin walk."""

from __future__ import annotations

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.instruction import Instruction
from solders.keypair import Keypair

from common.dex import meteora_dlmm as dlmm
from tests.simchain.conftest import rpc
from tests.simchain.helpers import (
    account,
    blockhash,
    memo,
    mint,
    plan_cpmm_swap,
    plan_dlmm_swap,
    pool_by_name,
    send,
    sign,
    sim_markets,
    simulate,
    token_amount,
)

SOL = 10**9


async def _pair(client: AsyncClient, key):  # type: ignore[no-untyped-def]
    owner, data, _ = await account(client, key)
    return dlmm.decode_lb_pair(key, owner, data, sim_markets().program_id("meteora_dlmm"))


async def test_swap_lands_exactly_as_quoted(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pair_key = pool_by_name("meteora_dlmm", "SOL/USDC")
    program_id = sim_markets().program_id("meteora_dlmm")
    plan = await plan_dlmm_swap(client, pair_key, wallet.pubkey(), mint("SOL"), 1_000 * SOL)  # crosses bins
    quote = plan.quote
    assert quote.bins_crossed >= 2
    before_in = await token_amount(client, plan.user_in)
    before_out = await token_amount(client, plan.user_out)
    sig = await send(
        client, sign(wallet, [plan.ix, memo(wallet.pubkey(), "oe:order-2:1")], await blockhash(client))
    )

    assert await token_amount(client, plan.user_in) == before_in - 1_000 * SOL
    assert await token_amount(client, plan.user_out) == before_out + quote.amount_out
    pair = await _pair(client, pair_key)
    assert pair == quote.lb_pair
    assert pair.active_id == quote.active_id_after
    for index, array in quote.bin_arrays.items():
        key = dlmm.bin_array_pda(program_id, pair_key, index)
        owner, data, _ = await account(client, key)
        assert dlmm.decode_bin_array(key, owner, data, program_id) == array
    owner, data, _ = await account(client, pair.oracle)
    oracle = dlmm.decode_oracle(pair.oracle, owner, data, program_id)
    assert oracle.active_size == 1

    swaps = (await rpc(http, "simSwaps"))["result"]
    assert [(s["signature"], s["memo"], s["venues"], s["amountOut"]) for s in swaps] == [
        (str(sig), "oe:order-2:1", ["meteora_dlmm"], quote.amount_out)
    ]


async def test_venues_differ_as_the_genesis_intends(client: AsyncClient, wallet: Keypair) -> None:
    """Selling SOL pays more on DLMM (~150.45), buying SOL is cheaper on CPMM (150.00)."""
    sol, usdc = mint("SOL"), mint("USDC")
    d_sell = await plan_dlmm_swap(client, pool_by_name("meteora_dlmm", "SOL/USDC"), wallet.pubkey(), sol, SOL)
    c_sell = await plan_cpmm_swap(client, pool_by_name("raydium_cpmm", "SOL/USDC"), wallet.pubkey(), sol, SOL)
    assert d_sell.quote.amount_out > c_sell.quote.amount_out
    usd = 150 * 10**6
    d_buy = await plan_dlmm_swap(client, pool_by_name("meteora_dlmm", "SOL/USDC"), wallet.pubkey(), usdc, usd)
    c_buy = await plan_cpmm_swap(client, pool_by_name("raydium_cpmm", "SOL/USDC"), wallet.pubkey(), usdc, usd)
    assert c_buy.quote.amount_out > d_buy.quote.amount_out


async def test_stable_pair_and_reverse_direction(client: AsyncClient, wallet: Keypair) -> None:
    pair_key = pool_by_name("meteora_dlmm", "USDT/USDC")
    plan = await plan_dlmm_swap(client, pair_key, wallet.pubkey(), mint("USDC"), 10_000 * 10**6)
    before = await token_amount(client, plan.user_out)
    await send(client, sign(wallet, [plan.ix], await blockhash(client)))
    assert await token_amount(client, plan.user_out) == before + plan.quote.amount_out
    assert 9_980 * 10**6 < plan.quote.amount_out < 10_000 * 10**6


async def test_min_out_breach_fails_with_6003(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pair_key = pool_by_name("meteora_dlmm", "SOL/USDT")
    probe = await plan_dlmm_swap(client, pair_key, wallet.pubkey(), mint("SOL"), 3 * SOL)
    plan = await plan_dlmm_swap(
        client, pair_key, wallet.pubkey(), mint("SOL"), 3 * SOL, min_out=probe.quote.amount_out + 1
    )
    tx = sign(wallet, [plan.ix], await blockhash(client))
    sim = await simulate(http, tx)
    assert sim["err"] == {"InstructionError": [0, {"Custom": 6003}]}
    assert any("Error Number: 6003" in line for line in sim["logs"])
    with pytest.raises(RPCException):
        await send(client, tx)
    sig = await send(client, tx, skip_preflight=True)
    status = (await rpc(http, "getSignatureStatuses", [[str(sig)], {"searchTransactionHistory": True}]))[
        "result"
    ]
    assert status["value"][0]["err"] == {"InstructionError": [0, {"Custom": 6003}]}
    assert await _pair(client, pair_key) == await _pair(client, pair_key)  # unchanged, readable
    assert (await rpc(http, "simSwaps"))["result"] == []


async def test_missing_bin_arrays_fail_like_the_program(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pair_key = pool_by_name("meteora_dlmm", "SOL/USDC")
    plan = await plan_dlmm_swap(client, pair_key, wallet.pubkey(), mint("SOL"), SOL)
    bad = Instruction(plan.ix.program_id, plan.ix.data, list(plan.ix.accounts)[:16])  # no bin arrays
    sim = await simulate(http, sign(wallet, [bad], await blockhash(client)))
    assert sim["err"] == {"InstructionError": [0, {"Custom": 3005}]}


async def test_swap_exact_out2_delivers_the_exact_amount(client: AsyncClient, wallet: Keypair) -> None:
    pair_key = pool_by_name("meteora_dlmm", "SOL/USDC")
    plan = await plan_dlmm_swap(client, pair_key, wallet.pubkey(), mint("SOL"), SOL)
    want = 300 * 10**6  # USDC
    max_in = 3 * SOL
    data = dlmm.DISC_SWAP_EXACT_OUT2 + max_in.to_bytes(8, "little") + want.to_bytes(8, "little") + bytes(4)
    ix = Instruction(plan.ix.program_id, data, list(plan.ix.accounts))
    before_in = await token_amount(client, plan.user_in)
    before_out = await token_amount(client, plan.user_out)
    await send(client, sign(wallet, [ix], await blockhash(client)))
    assert await token_amount(client, plan.user_out) == before_out + want
    spent = before_in - await token_amount(client, plan.user_in)
    assert 1.99 * SOL < spent < 2.0 * SOL  # ~300 / 150.45 plus the fee
