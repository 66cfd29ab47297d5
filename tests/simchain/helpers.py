"""Building real transactions against the simulated chain, as the executor would: read the pool
accounts over JSON-RPC, quote with common.dex on that state and the chain's clock, sign with solders."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import associated_token_address, decode_mint, decode_token_account
from common.markets import Markets, load_markets
from common.settings import REPO_ROOT

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
CLOCK = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")


def sim_markets() -> Markets:
    return load_markets(REPO_ROOT / "markets" / "sim.json")


def pool_by_name(venue: str, name: str) -> Pubkey:
    doc = json.loads((REPO_ROOT / "markets" / "sim.json").read_text())
    for p in doc["pools"]:
        if p["venue"] == venue and p["name"] == name:
            return Pubkey.from_string(p["address"])
    raise KeyError((venue, name))


def mint(symbol: str) -> Pubkey:
    token = sim_markets().token(symbol)
    assert token is not None
    return Pubkey.from_string(token.mint)


async def account(client: AsyncClient, key: Pubkey) -> tuple[Pubkey, bytes, int]:
    value = (await client.get_account_info(key)).value
    assert value is not None, f"account {key} not found"
    return value.owner, bytes(value.data), value.lamports


@dataclass
class Clock:
    slot: int
    epoch: int
    unix_timestamp: int


async def clock(client: AsyncClient) -> Clock:
    _, data, _ = await account(client, CLOCK)
    slot, _, epoch, _, unix_ts = struct.unpack("<QqQQq", data)
    return Clock(slot, epoch, unix_ts)


async def token_amount(client: AsyncClient, key: Pubkey) -> int:
    return int((await client.get_token_account_balance(key)).value.amount)


def ata(owner: Pubkey, mint_: Pubkey, program: Pubkey) -> Pubkey:
    return associated_token_address(owner, mint_, program)


async def blockhash(client: AsyncClient) -> Hash:
    return (await client.get_latest_blockhash()).value.blockhash


def sign(payer: Keypair, ixs: list[Instruction], recent: Hash, *others: Keypair) -> VersionedTransaction:
    msg = MessageV0.try_compile(payer.pubkey(), ixs, [], recent)
    return VersionedTransaction(msg, [payer, *others])


async def send(client: AsyncClient, tx: VersionedTransaction, *, skip_preflight: bool = False) -> Signature:
    return (await client.send_transaction(tx, opts=TxOpts(skip_preflight=skip_preflight))).value


def memo(signer: Pubkey, text: str) -> Instruction:
    return create_memo(MemoParams(program_id=MEMO_PROGRAM, signer=signer, message=text.encode()))


@dataclass
class PlannedSwap:
    ix: Instruction
    quote: Any
    user_in: Pubkey
    user_out: Pubkey
    pool: Pubkey


async def plan_cpmm_swap(
    client: AsyncClient, pool_key: Pubkey, user: Pubkey, input_mint: Pubkey, amount_in: int, min_out: int = 0
) -> PlannedSwap:
    program_id = Pubkey.from_string(sim_markets().programs["raydium_cpmm"])
    owner, data, _ = await account(client, pool_key)
    state = cpmm.decode_pool_state(pool_key, owner, data, program_id)
    owner, data, _ = await account(client, state.amm_config)
    config = cpmm.decode_amm_config(state.amm_config, owner, data, program_id)
    zero_for_one = input_mint == state.token_0_mint
    vaults = []
    for v in (state.token_0_vault, state.token_1_vault):
        owner, data, _ = await account(client, v)
        vaults.append(decode_token_account(v, owner, data).amount)
    fees = []
    for m in (state.token_0_mint, state.token_1_mint):
        owner, data, _ = await account(client, m)
        fees.append(decode_mint(m, owner, data).transfer_fee_config)
    c = await clock(client)
    fee_in, fee_out = (fees[0], fees[1]) if zero_for_one else (fees[1], fees[0])
    quote = cpmm.quote_exact_in(
        state,
        config,
        vaults[0],
        vaults[1],
        amount_in,
        zero_for_one,
        c.unix_timestamp,
        fee_in,
        fee_out,
        c.epoch,
    )
    if zero_for_one:
        in_mint, out_mint = state.token_0_mint, state.token_1_mint
        in_vault, out_vault = state.token_0_vault, state.token_1_vault
        in_prog, out_prog = state.token_0_program, state.token_1_program
    else:
        in_mint, out_mint = state.token_1_mint, state.token_0_mint
        in_vault, out_vault = state.token_1_vault, state.token_0_vault
        in_prog, out_prog = state.token_1_program, state.token_0_program
    user_in, user_out = ata(user, in_mint, in_prog), ata(user, out_mint, out_prog)
    ix = cpmm.swap_base_input_ix(
        program_id,
        user,
        pool_key,
        state.amm_config,
        user_in,
        user_out,
        in_vault,
        out_vault,
        in_prog,
        out_prog,
        in_mint,
        out_mint,
        state.observation_key,
        amount_in,
        min_out,
    )
    return PlannedSwap(ix, quote, user_in, user_out, pool_key)


async def plan_dlmm_swap(
    client: AsyncClient, pair_key: Pubkey, user: Pubkey, input_mint: Pubkey, amount_in: int, min_out: int = 0
) -> PlannedSwap:
    program_id = Pubkey.from_string(sim_markets().programs["meteora_dlmm"])
    owner, data, _ = await account(client, pair_key)
    pair = dlmm.decode_lb_pair(pair_key, owner, data, program_id)
    swap_for_y = input_mint == pair.token_x_mint
    indexes = dlmm.bin_arrays_for_swap(pair, swap_for_y, 3)
    keys = [dlmm.bin_array_pda(program_id, pair_key, i) for i in indexes]
    arrays = {}
    for i, k in zip(indexes, keys, strict=True):
        owner, data, _ = await account(client, k)
        arrays[i] = dlmm.decode_bin_array(k, owner, data, program_id)
    mints = []
    progs = []
    for m in (pair.token_x_mint, pair.token_y_mint):
        owner, data, _ = await account(client, m)
        mints.append(decode_mint(m, owner, data))
        progs.append(owner)
    c = await clock(client)
    quote = dlmm.quote_exact_in(
        pair,
        arrays,
        amount_in,
        swap_for_y,
        c.slot,
        c.unix_timestamp,
        c.epoch,
        mints[0].transfer_fee_config,
        mints[1].transfer_fee_config,
        bin_array_order=indexes,
    )
    x_ata, y_ata = ata(user, pair.token_x_mint, progs[0]), ata(user, pair.token_y_mint, progs[1])
    user_in, user_out = (x_ata, y_ata) if swap_for_y else (y_ata, x_ata)
    ix = dlmm.swap2_ix(
        program_id,
        pair_key,
        None,
        pair.reserve_x,
        pair.reserve_y,
        user_in,
        user_out,
        pair.token_x_mint,
        pair.token_y_mint,
        pair.oracle,
        None,
        user,
        progs[0],
        progs[1],
        MEMO_PROGRAM,
        keys,
        amount_in,
        min_out,
    )
    return PlannedSwap(ix, quote, user_in, user_out, pair_key)


async def simulate(http: Any, tx: VersionedTransaction) -> dict[str, Any]:
    """simulateTransaction over raw JSON-RPC: the result's `value` as the node sent it."""
    import base64

    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "simulateTransaction",
        "params": [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64", "commitment": "confirmed"}],
    }
    resp = await http.post("/", json=body)
    result: dict[str, Any] = resp.json()["result"]["value"]
    return result


async def trade(
    client: AsyncClient, trader: Keypair, venue: str, pool: Pubkey, input_symbol: str, amount_in: int
) -> Signature:
    """Another trader's swap (min-out 0) through the pool's program, waited for until confirmed.
    `trader` must hold the input token (requestAirdrop: an ATA of every token, wSOL included)."""
    plan = plan_cpmm_swap if venue == "raydium_cpmm" else plan_dlmm_swap
    planned = await plan(client, pool, trader.pubkey(), mint(input_symbol), amount_in)
    signature = await send(client, sign(trader, [planned.ix], await blockhash(client)))
    await client.confirm_transaction(signature, sleep_seconds=0.02)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and status.err is None, status
    return signature
