"""Raydium CPMM `initialize` on the simulated chain: a pool made through the program's own
instruction (the admin method simCreatePool, or a transaction a creator signs) holds exactly the
opening amounts, is found by getProgramAccounts with the router's filters, and swaps like a
genesis pool once its open time has come."""

from __future__ import annotations

from math import isqrt

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from common.chain import ChainClient
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import TOKEN_PROGRAM_ID, decode_mint, decode_token_account
from router_svc.discovery import discover_pools
from simchain.genesis import build_genesis
from tests.simchain.conftest import rpc
from tests.simchain.helpers import (
    account,
    blockhash,
    clock,
    mint,
    plan_cpmm_swap,
    send,
    sign,
    sim_markets,
    token_amount,
)

SOL = 10**9
NEW = 10**6


def _program() -> Pubkey:
    return sim_markets().program_id("raydium_cpmm")


async def _create(http: httpx.AsyncClient, sol: int, new: int, **extra: object) -> dict[str, object]:
    params = {
        "venue": "raydium_cpmm",
        "mintA": str(mint("SOL")),
        "mintB": str(mint("NEW")),
        "amountA": sol,
        "amountB": new,
        **extra,
    }
    reply = await rpc(http, "simCreatePool", [params])
    assert "result" in reply, reply
    return reply["result"]  # type: ignore[no-any-return]


async def test_sim_create_pool_makes_a_pool_with_the_opening_amounts(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    made = await _create(http, 50 * SOL, 7_500 * NEW)
    pool_key = Pubkey.from_string(str(made["pool"]))
    owner, data, lamports = await account(client, pool_key)
    assert owner == _program() and lamports > 0
    state = cpmm.decode_pool_state(pool_key, owner, data, _program())
    sol_first = bytes(mint("SOL")) < bytes(mint("NEW"))
    assert (state.token_0_mint, state.token_1_mint) == (
        (mint("SOL"), mint("NEW")) if sol_first else (mint("NEW"), mint("SOL"))
    )
    config = cpmm.amm_config_pda(_program(), 0)
    assert pool_key == cpmm.pool_pda(_program(), config, state.token_0_mint, state.token_1_mint)
    assert state.amm_config == config
    genesis = build_genesis(sim_markets().programs)
    assert state.pool_creator == genesis.pool_creator.pubkey()
    amounts = (50 * SOL, 7_500 * NEW) if sol_first else (7_500 * NEW, 50 * SOL)
    assert await token_amount(client, state.token_0_vault) == amounts[0]
    assert await token_amount(client, state.token_1_vault) == amounts[1]
    for vault in (state.token_0_vault, state.token_1_vault):
        v_owner, v_data, _ = await account(client, vault)
        assert decode_token_account(vault, v_owner, v_data).owner == cpmm.authority_pda(_program())
    liquidity = isqrt(amounts[0] * amounts[1])
    assert state.lp_supply == liquidity
    m_owner, m_data, _ = await account(client, state.lp_mint)
    lp = decode_mint(state.lp_mint, m_owner, m_data)
    assert (lp.decimals, lp.supply, lp.mint_authority) == (9, liquidity - 100, cpmm.authority_pda(_program()))
    o_owner, o_data, _ = await account(client, state.observation_key)
    assert o_owner == _program() and o_data == cpmm.observation_data(pool_key)
    now = (await clock(client)).unix_timestamp  # 60 s slots: still the creating slot's clock
    assert state.open_time == made["openTime"] == now + 1

    # the router's discovery (getProgramAccounts with its memcmp filters) finds exactly it
    chain = ChainClient(str(http.base_url))
    try:
        found = await discover_pools(chain, sim_markets().programs, mint("NEW"), mint("SOL"))
    finally:
        await chain.close()
    assert [(p.venue, p.address) for p in found] == [("raydium_cpmm", pool_key)]


async def test_the_new_pool_swaps_once_open(
    client: AsyncClient, http: httpx.AsyncClient, wallet: Keypair
) -> None:
    made = await _create(http, 40 * SOL, 8_000 * NEW)
    pool_key = Pubkey.from_string(str(made["pool"]))
    # before its open time the program refuses the swap (NotApproved), as the real one does
    plan = await plan_cpmm_swap_unchecked(client, pool_key, wallet, 1 * SOL)
    tx = sign(wallet, [plan], await blockhash(client))
    try:
        await send(client, tx)
        raise AssertionError("a swap before open_time landed")
    except RPCException as exc:
        assert "0x1770" in str(exc) or "6000" in str(exc) or "Custom" in str(exc)
    await rpc(http, "simWarpSlots", [{"n": 1}])  # 60 s slots in these tests: the pool is open now
    swap = await plan_cpmm_swap(client, pool_key, wallet.pubkey(), mint("SOL"), 1 * SOL)
    before = await token_amount(client, swap.user_out)
    await send(client, sign(wallet, [swap.ix], await blockhash(client)))
    assert await token_amount(client, swap.user_out) == before + swap.quote.amount_out
    assert swap.quote.amount_out > 190 * NEW  # ~200 NEW per SOL less the fee and the impact


async def plan_cpmm_swap_unchecked(client: AsyncClient, pool_key: Pubkey, wallet: Keypair, amount: int):  # type: ignore[no-untyped-def]
    """A swap instruction for the pool without quoting it (the quote refuses a closed pool)."""
    owner, data, _ = await account(client, pool_key)
    state = cpmm.decode_pool_state(pool_key, owner, data, _program())
    sol_is_0 = state.token_0_mint == mint("SOL")
    vin, vout = (
        (state.token_0_vault, state.token_1_vault) if sol_is_0 else (state.token_1_vault, state.token_0_vault)
    )
    from tests.simchain.helpers import ata

    return cpmm.swap_base_input_ix(
        _program(),
        wallet.pubkey(),
        pool_key,
        state.amm_config,
        ata(wallet.pubkey(), mint("SOL"), TOKEN_PROGRAM_ID),
        ata(wallet.pubkey(), mint("NEW"), TOKEN_PROGRAM_ID),
        vin,
        vout,
        TOKEN_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        mint("SOL"),
        mint("NEW"),
        state.observation_key,
        amount,
        1,
    )


async def test_a_second_pool_of_the_same_config_and_pair_is_refused(http: httpx.AsyncClient) -> None:
    await _create(http, 10 * SOL, 1_000 * NEW)
    reply = await rpc(
        http,
        "simCreatePool",
        [
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("NEW")),
                "mintB": str(mint("SOL")),
                "amountA": 1,
                "amountB": 1,
            }
        ],
    )
    assert reply["error"]["code"] == -32002
    assert "custom program error: 0x0" in reply["error"]["message"]  # AccountAlreadyInUse


async def test_an_initial_liquidity_under_the_locked_lp_is_refused(http: httpx.AsyncClient) -> None:
    reply = await rpc(
        http,
        "simCreatePool",
        [
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("SOL")),
                "mintB": str(mint("NEW")),
                "amountA": 50,
                "amountB": 100,
            }
        ],
    )
    assert reply["error"]["code"] == -32002
    assert any("InitLpAmountTooLess" in line for line in reply["error"]["data"]["logs"])


async def test_bad_params_name_what_is_wrong(http: httpx.AsyncClient) -> None:
    cases = [
        (
            {
                "venue": "meteora_dlmm",
                "mintA": str(mint("SOL")),
                "mintB": str(mint("NEW")),
                "amountA": 1,
                "amountB": 1,
            },
            "venue",
        ),
        (
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("SOL")),
                "mintB": str(mint("SOL")),
                "amountA": 1,
                "amountB": 1,
            },
            "mintB",
        ),
        (
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("SOL")),
                "mintB": str(Keypair().pubkey()),
                "amountA": 1,
                "amountB": 1,
            },
            "not a token mint",
        ),
        (
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("SOL")),
                "mintB": str(mint("NEW")),
                "amountA": -1,
                "amountB": 1,
            },
            "amountA",
        ),
        (
            {
                "venue": "raydium_cpmm",
                "mintA": str(mint("SOL")),
                "mintB": str(mint("NEW")),
                "amountA": 1,
                "amountB": 1,
                "colour": 1,
            },
            "colour",
        ),
    ]
    for params, word in cases:
        reply = await rpc(http, "simCreatePool", [params])
        assert reply["error"]["code"] == -32602, reply
        assert word in reply["error"]["message"]


async def test_initialize_checks_accounts_like_the_program(client: AsyncClient, wallet: Keypair) -> None:
    """A creator of its own (the test wallet) signing `initialize`: a wrong fee receiver fails
    with ConstraintAddress, the right one creates the pool."""
    program = _program()
    config = cpmm.amm_config_pda(program, 0)
    receiver = Pubkey.from_string(cpmm.CREATE_POOL_FEE_RECEIVERS[str(program)])
    args = (program, wallet.pubkey(), config)
    bad, _ = cpmm.initialize_ix(
        *args, Keypair().pubkey(), mint("USDC"), mint("NEW"), 1_000 * NEW, 1_000 * NEW
    )
    try:
        await send(client, sign(wallet, [bad], await blockhash(client)))
        raise AssertionError("initialize with a wrong fee account landed")
    except RPCException as exc:
        assert "0x7dc" in str(exc) or "2012" in str(exc)
    ix, keys = cpmm.initialize_ix(*args, receiver, mint("USDC"), mint("NEW"), 1_000 * NEW, 2_000 * NEW)
    fee_before = await token_amount(client, receiver)
    await send(client, sign(wallet, [ix], await blockhash(client)))
    owner, data, _ = await account(client, keys.pool_state)
    state = cpmm.decode_pool_state(keys.pool_state, owner, data, program)
    assert state.pool_creator == wallet.pubkey()
    c_owner, c_data, _ = await account(client, config)
    fee = cpmm.decode_amm_config(config, c_owner, c_data, program).create_pool_fee
    assert await token_amount(client, receiver) == fee_before + fee
