"""Raydium CPMM swap_base_input executed by the simulated chain with common.dex's exact math."""

from __future__ import annotations

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair

from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import decode_token_account
from tests.simchain.conftest import rpc
from tests.simchain.helpers import (
    account,
    blockhash,
    clock,
    memo,
    mint,
    plan_cpmm_swap,
    pool_by_name,
    send,
    sign,
    sim_markets,
    simulate,
    token_amount,
)

SOL = 10**9


async def _pool_state(client: AsyncClient, key):  # type: ignore[no-untyped-def]
    owner, data, _ = await account(client, key)
    return cpmm.decode_pool_state(key, owner, data, sim_markets().program_id("raydium_cpmm"))


async def test_swap_lands_exactly_as_quoted(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pool = pool_by_name("raydium_cpmm", "SOL/USDC")
    plan = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("SOL"), 2 * SOL)
    quote = plan.quote
    before_in = await token_amount(client, plan.user_in)
    before_out = await token_amount(client, plan.user_out)
    state = await _pool_state(client, pool)
    tx = sign(wallet, [plan.ix, memo(wallet.pubkey(), "oe:order-1:1")], await blockhash(client))
    sig = await send(client, tx)

    assert await token_amount(client, plan.user_in) == before_in - 2 * SOL
    assert await token_amount(client, plan.user_out) == before_out + quote.amount_out
    assert quote.amount_out > 299 * 10**6  # ~150 USDC per SOL less 0.25 %
    after = await _pool_state(client, pool)
    assert after == quote.pool
    assert after.protocol_fees_token_0 + after.protocol_fees_token_1 > state.protocol_fees_token_0 + (
        state.protocol_fees_token_1
    )
    for vault, amount in (
        (after.token_0_vault, quote.vault_0_amount),
        (after.token_1_vault, quote.vault_1_amount),
    ):
        owner, data, _ = await account(client, vault)
        assert decode_token_account(vault, owner, data).amount == amount

    swaps = (await rpc(http, "simSwaps"))["result"]
    assert len(swaps) == 1
    landed = swaps[0]
    assert landed["signature"] == str(sig)
    assert landed["memo"] == "oe:order-1:1"
    assert landed["venues"] == ["raydium_cpmm"]
    assert landed["pools"] == [str(pool)]
    assert landed["amountIn"] == 2 * SOL and landed["amountOut"] == quote.amount_out
    assert landed["inputMint"] == str(mint("SOL")) and landed["outputMint"] == str(mint("USDC"))
    assert (await rpc(http, "simSwaps", [{"memoPrefix": "oe:other"}]))["result"] == []


async def test_swap_back_the_other_way(client: AsyncClient, wallet: Keypair) -> None:
    pool = pool_by_name("raydium_cpmm", "SOL/USDT")
    plan = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("USDT"), 1_000 * 10**6)
    before = await token_amount(client, plan.user_out)
    await send(client, sign(wallet, [plan.ix], await blockhash(client)))
    assert await token_amount(client, plan.user_out) == before + plan.quote.amount_out
    assert 6 * SOL < plan.quote.amount_out < 7 * SOL  # ~1000 / 149.9


async def test_min_out_breach_fails_with_exceeded_slippage(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pool = pool_by_name("raydium_cpmm", "SOL/USDC")
    probe = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("SOL"), SOL)
    plan = await plan_cpmm_swap(
        client, pool, wallet.pubkey(), mint("SOL"), SOL, min_out=probe.quote.amount_out + 1
    )
    tx = sign(wallet, [plan.ix], await blockhash(client))
    sim = await simulate(http, tx)
    assert sim["err"] == {"InstructionError": [0, {"Custom": 6005}]}
    assert any("Error Code: ExceededSlippage. Error Number: 6005" in line for line in sim["logs"])
    with pytest.raises(RPCException):
        await send(client, tx)
    before = await token_amount(client, plan.user_in)
    sig = await send(client, tx, skip_preflight=True)  # lands, fails, charges the fee only
    statuses = (await rpc(http, "getSignatureStatuses", [[str(sig)]]))["result"]["value"]
    assert statuses[0]["err"] == {"InstructionError": [0, {"Custom": 6005}]}
    assert statuses[0]["confirmationStatus"] == "confirmed"
    assert await token_amount(client, plan.user_in) == before
    assert (await rpc(http, "simSwaps"))["result"] == []
    # exactly the quoted minimum passes
    ok = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("SOL"), SOL, min_out=probe.quote.amount_out)
    await send(client, sign(wallet, [ok.ix], await blockhash(client)))


async def test_get_transaction_reports_token_balances(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    pool = pool_by_name("raydium_cpmm", "SOL/USDC")
    plan = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("SOL"), SOL)
    before_out = await token_amount(client, plan.user_out)
    sig = await send(client, sign(wallet, [plan.ix], await blockhash(client)))
    tx = (
        await rpc(
            http,
            "getTransaction",
            [str(sig), {"commitment": "confirmed", "maxSupportedTransactionVersion": 0}],
        )
    )["result"]
    meta = tx["meta"]
    assert meta["err"] is None and meta["fee"] == 5000
    keys = tx["transaction"]["message"]["accountKeys"]
    out_index = keys.index(str(plan.user_out))
    pre = next(b for b in meta["preTokenBalances"] if b["accountIndex"] == out_index)
    post = next(b for b in meta["postTokenBalances"] if b["accountIndex"] == out_index)
    assert pre["mint"] == str(mint("USDC")) and pre["owner"] == str(wallet.pubkey())
    assert int(post["uiTokenAmount"]["amount"]) - int(pre["uiTokenAmount"]["amount"]) == plan.quote.amount_out
    assert int(post["uiTokenAmount"]["amount"]) == before_out + plan.quote.amount_out
    assert post["uiTokenAmount"]["decimals"] == 6
    assert any("Instruction: SwapBaseInput" in line for line in meta["logMessages"])
    assert meta["computeUnitsConsumed"] > 0
    # the typed client parses the same answer
    typed = await client.get_transaction(sig, max_supported_transaction_version=0)
    assert typed.value is not None and typed.value.slot == tx["slot"]


async def test_wrong_vault_is_rejected(client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient) -> None:
    sol_usdc = pool_by_name("raydium_cpmm", "SOL/USDC")
    sol_usdt = pool_by_name("raydium_cpmm", "SOL/USDT")
    plan = await plan_cpmm_swap(client, sol_usdc, wallet.pubkey(), mint("SOL"), SOL)
    other = await _pool_state(client, sol_usdt)
    accounts = list(plan.ix.accounts)
    accounts[7] = AccountMeta(
        other.token_1_vault if other.token_0_mint == mint("SOL") else other.token_0_vault, False, True
    )
    bad = Instruction(plan.ix.program_id, plan.ix.data, accounts)
    sim = await simulate(http, sign(wallet, [bad], await blockhash(client)))
    assert sim["err"] == {"InstructionError": [0, {"Custom": 6008}]}


async def test_swap_base_output_delivers_the_exact_amount(client: AsyncClient, wallet: Keypair) -> None:
    pool = pool_by_name("raydium_cpmm", "SOL/USDC")
    plan = await plan_cpmm_swap(client, pool, wallet.pubkey(), mint("USDC"), 10**6)  # USDC -> SOL accounts
    state = await _pool_state(client, pool)
    owner, data, _ = await account(client, state.amm_config)
    config = cpmm.decode_amm_config(state.amm_config, owner, data, sim_markets().program_id("raydium_cpmm"))
    vaults = []
    for v in (state.token_0_vault, state.token_1_vault):
        owner, data, _ = await account(client, v)
        vaults.append(decode_token_account(v, owner, data).amount)
    c = await clock(client)
    zero_for_one = state.token_0_mint == mint("USDC")
    want = 2 * SOL
    quote = cpmm.quote_exact_out(state, config, vaults[0], vaults[1], want, zero_for_one, c.unix_timestamp)
    data = cpmm.DISC_SWAP_BASE_OUTPUT + (400 * 10**6).to_bytes(8, "little") + want.to_bytes(8, "little")
    ix = Instruction(plan.ix.program_id, data, list(plan.ix.accounts))
    before_in = await token_amount(client, plan.user_in)
    before_out = await token_amount(client, plan.user_out)
    await send(client, sign(wallet, [ix], await blockhash(client)))
    assert await token_amount(client, plan.user_out) == before_out + want
    assert await token_amount(client, plan.user_in) == before_in - quote.amount_in
    assert 300 * 10**6 < quote.amount_in < 302 * 10**6
