"""The JSON-RPC methods' shapes, through the typed solana-py client and raw requests."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Finalized
from solana.rpc.core import RPCException
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from spl.token.constants import TOKEN_PROGRAM_ID

from simchain.ledger import minimum_balance
from simchain.rpc import ui_amount_string
from tests.simchain.conftest import rpc
from tests.simchain.helpers import CLOCK, ata, blockhash, clock, mint, send, sign

SOL = 10**9


async def test_cluster_methods(client: AsyncClient, http: httpx.AsyncClient) -> None:
    assert await client.is_connected()
    assert (await client.get_version()).value.solana_core
    await rpc(http, "simWarpSlots", [{"n": 40}])
    assert (await client.get_slot()).value == 40
    assert (await client.get_block_height()).value == 40
    assert (await client.get_slot(Finalized)).value == 8  # 32 slots behind the tip
    info = (await client.get_epoch_info()).value
    assert (info.absolute_slot, info.epoch, info.slot_index, info.slots_in_epoch) == (40, 0, 40, 432_000)
    latest = await client.get_latest_blockhash()
    assert latest.context.slot == 40 and latest.value.last_valid_block_height == 190
    final = await client.get_latest_blockhash(Finalized)
    assert final.value.last_valid_block_height == 158 and final.value.blockhash != latest.value.blockhash
    assert (await client.get_genesis_hash()).value
    assert (
        (await client.get_minimum_balance_for_rent_exemption(165)).value == 2_039_280 == minimum_balance(165)
    )
    c = await clock(client)
    assert c.slot == 40 and c.unix_timestamp == 1_800_000_000 + 40 * 60  # 60 s slots in these tests
    assert (await rpc(http, "getHealth"))["result"] == "ok"


async def test_account_reads(client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient) -> None:
    usdc_ata = ata(wallet.pubkey(), mint("USDC"), TOKEN_PROGRAM_ID)
    missing = Pubkey.new_unique()
    info = await client.get_account_info(usdc_ata)
    assert info.value is not None and info.value.owner == TOKEN_PROGRAM_ID and len(info.value.data) == 165
    assert (await client.get_account_info(missing)).value is None
    many = await client.get_multiple_accounts([usdc_ata, missing, wallet.pubkey(), CLOCK])
    assert [a is not None for a in many.value] == [True, False, True, True]
    assert bytes(many.value[0].data) == bytes(info.value.data)  # type: ignore[union-attr]
    assert (await client.get_balance(wallet.pubkey())).value == 100 * SOL
    assert (await client.get_balance(missing)).value == 0
    bal = (await client.get_token_account_balance(usdc_ata)).value
    assert (bal.amount, bal.decimals, bal.ui_amount_string) == ("1000000000000", 6, "1000000")
    # raw shapes: base64 default of solana-py, base58 for small data, dataSlice
    raw = (await rpc(http, "getAccountInfo", [str(usdc_ata), {"encoding": "base64"}]))["result"]
    assert raw["context"]["slot"] == 0
    assert raw["value"]["data"][1] == "base64" and raw["value"]["space"] == 165
    assert raw["value"]["rentEpoch"] == 2**64 - 1 and raw["value"]["executable"] is False
    sliced = (
        await rpc(
            http,
            "getAccountInfo",
            [str(usdc_ata), {"encoding": "base64", "dataSlice": {"offset": 64, "length": 8}}],
        )
    )["result"]["value"]
    assert base64.b64decode(sliced["data"][0]) == (10**12).to_bytes(8, "little")
    too_big = await rpc(http, "getAccountInfo", [str(usdc_ata), {"encoding": "base58"}])
    assert too_big["error"]["code"] == -32600
    small = await rpc(http, "getAccountInfo", [str(CLOCK), {"encoding": "base58"}])
    assert small["result"]["value"]["data"][1] == "base58"
    not_token = await rpc(http, "getTokenAccountBalance", [str(wallet.pubkey())])
    assert not_token["error"] == {"code": -32602, "message": "Invalid param: not a Token account"}
    keys = [str(Pubkey.new_unique()) for _ in range(101)]
    assert (await rpc(http, "getMultipleAccounts", [keys]))["error"]["code"] == -32602


async def test_fee_for_message_and_simulate(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    ixs = [
        set_compute_unit_limit(50_000),
        set_compute_unit_price(1_000_000),
        transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=SOL)),
    ]
    msg = MessageV0.try_compile(wallet.pubkey(), ixs, [], await blockhash(client))
    assert (await client.get_fee_for_message(msg)).value == 5000 + 50_000
    stale = MessageV0.try_compile(wallet.pubkey(), ixs, [], Hash.new_unique())
    assert (await client.get_fee_for_message(stale)).value is None
    encoded = base64.b64encode(to_bytes_versioned(msg)).decode()
    assert (await rpc(http, "getFeeForMessage", [encoded]))["result"]["value"] == 55_000
    tx = sign(wallet, ixs, await blockhash(client))
    sim = await client.simulate_transaction(tx)
    assert sim.value.err is None and sim.value.units_consumed == 450 and sim.value.accounts is None
    raw = (
        await rpc(
            http,
            "simulateTransaction",
            [
                base64.b64encode(bytes(tx)).decode(),
                {
                    "encoding": "base64",
                    "replaceRecentBlockhash": True,
                    "accounts": {"addresses": [str(wallet.pubkey())]},
                },
            ],
        )
    )["result"]["value"]
    assert raw["replacementBlockhash"]["lastValidBlockHeight"] == 150
    assert raw["accounts"][0]["lamports"] == 100 * SOL - SOL - 55_000
    assert (await client.get_balance(wallet.pubkey())).value == 100 * SOL  # simulation changes nothing


async def test_signature_statuses_and_transactions(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    dst = Pubkey.new_unique()
    ix = transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=dst, lamports=SOL))
    sig = await send(client, sign(wallet, [ix], await blockhash(client)))
    unknown = Keypair().sign_message(b"x")
    statuses = (await client.get_signature_statuses([sig, unknown])).value
    assert statuses[0] is not None and statuses[0].slot == 0 and statuses[0].confirmations == 0
    assert statuses[1] is None
    # v0 needs maxSupportedTransactionVersion, as on a real node
    v0 = await rpc(http, "getTransaction", [str(sig), {"commitment": "confirmed"}])
    assert v0["error"]["code"] == -32015
    # finalized only 32 slots later
    assert (await rpc(http, "getTransaction", [str(sig), {"maxSupportedTransactionVersion": 0}]))[
        "result"
    ] is None
    await rpc(http, "simWarpSlots", [{"n": 32}])
    tx = (await rpc(http, "getTransaction", [str(sig), {"maxSupportedTransactionVersion": 0}]))["result"]
    assert tx["version"] == 0 and tx["slot"] == 0 and tx["blockTime"] == 1_800_000_000
    assert tx["meta"]["preBalances"][:2] == [100 * SOL, 0]
    assert tx["meta"]["postBalances"][:2] == [99 * SOL - 5000, SOL]
    status = (await client.get_signature_statuses([sig])).value[0]
    assert status is not None and status.confirmations is None
    assert "Finalized" in str(status.confirmation_status)
    b64 = (
        await rpc(
            http, "getTransaction", [str(sig), {"encoding": "base64", "maxSupportedTransactionVersion": 0}]
        )
    )["result"]
    assert b64["transaction"][1] == "base64"
    sigs = [str(sig)] * 257
    assert (await rpc(http, "getSignatureStatuses", [sigs]))["error"]["code"] == -32602
    assert (await client.get_transaction(sig, max_supported_transaction_version=0)).value is not None


async def test_recent_prioritization_fees(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    await rpc(http, "simWarpSlots", [1])
    dst = Pubkey.new_unique()
    ixs = [
        set_compute_unit_price(7_000),
        transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=dst, lamports=SOL)),
    ]
    await send(client, sign(wallet, ixs, await blockhash(client)))
    fees = (await rpc(http, "getRecentPrioritizationFees", [[str(dst)]]))["result"]
    assert fees[-1] == {"slot": 1, "prioritizationFee": 7_000}
    assert fees[0] == {"slot": 0, "prioritizationFee": 0}


def test_ui_amount_string() -> None:
    assert ui_amount_string(1_500_000, 6) == "1.5"
    assert ui_amount_string(0, 6) == "0"
    assert ui_amount_string(10**15, 9) == "1000000"
    assert ui_amount_string(1, 9) == "0.000000001"
    assert ui_amount_string(42, 0) == "42"


async def test_min_context_slot(http: httpx.AsyncClient) -> None:
    resp = await rpc(http, "getSlot", [{"minContextSlot": 5}])
    assert resp["error"] == {
        "code": -32016,
        "message": "Minimum context slot has not been reached",
        "data": {"contextSlot": 0},
    }


async def test_send_base58_encoding(client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient) -> None:
    from simchain.b58 import b58encode

    dst = Pubkey.new_unique()
    ix = transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=dst, lamports=SOL))
    tx = sign(wallet, [ix], await blockhash(client))
    resp = await rpc(http, "sendTransaction", [b58encode(bytes(tx))])  # base58 is the method's default
    assert resp["result"] == str(tx.signatures[0])
    assert (await client.get_balance(dst)).value == SOL


@pytest.mark.parametrize("commitment", ["processed", "confirmed", "finalized"])
async def test_commitments_accepted(http: httpx.AsyncClient, commitment: str) -> None:
    assert "result" in await rpc(http, "getLatestBlockhash", [{"commitment": commitment}])


async def test_airdrop_validation(client: AsyncClient, http: httpx.AsyncClient) -> None:
    assert (await rpc(http, "requestAirdrop", ["not-a-key", 1]))["error"]["code"] == -32602
    assert (await rpc(http, "requestAirdrop", [str(Pubkey.new_unique()), -1]))["error"]["code"] == -32602
    assert (await rpc(http, "requestAirdrop", [str(Pubkey.new_unique()), 0]))["error"]["code"] == -32602
    with pytest.raises(RPCException):
        await client.request_airdrop(Pubkey.new_unique(), 2**64 - 1)  # more than the faucet holds


async def test_get_program_accounts(client: AsyncClient, http: httpx.AsyncClient) -> None:
    """getProgramAccounts with dataSize and memcmp filters (base58 and base64 bytes), through the
    typed solana-py client and raw requests."""
    from solana.rpc.models import DataSliceOpts, MemcmpOpts

    from common.dex import raydium_cpmm
    from common.markets import load_markets
    from common.settings import REPO_ROOT

    markets = load_markets(REPO_ROOT / "markets" / "sim.json")
    program = markets.program_id("raydium_cpmm")
    pools = {p.address for p in markets.pools if p.venue == "raydium_cpmm"}
    sol = "So11111111111111111111111111111111111111112"
    # every account of the program: pools, the shared AmmConfig, observations
    everything = (await client.get_program_accounts(program, encoding="base64")).value
    assert pools < {str(a.pubkey) for a in everything}
    assert all(a.account.owner == program for a in everything)
    # pools only (size), then the SOL/USDC pool only (a mint at its offset)
    size = raydium_cpmm.POOL_STATE_SIZE
    by_size = await client.get_program_accounts(program, encoding="base64", filters=[size])
    assert {str(a.pubkey) for a in by_size.value} == pools
    usdc = markets.token("USDC")
    assert usdc is not None
    offset_0 = raydium_cpmm.POOL_STATE_TOKEN_0_MINT_OFFSET
    offset_1 = raydium_cpmm.POOL_STATE_TOKEN_1_MINT_OFFSET
    mint_0, mint_1 = sorted((sol, usdc.mint), key=lambda m: bytes(Pubkey.from_string(m)))  # CPMM sorts them
    sol_usdc = await client.get_program_accounts(
        program,
        encoding="base64",
        filters=[size, MemcmpOpts(offset=offset_0, bytes=mint_0), MemcmpOpts(offset=offset_1, bytes=mint_1)],
    )
    assert len(sol_usdc.value) == 1
    (found,) = sol_usdc.value
    assert bytes(found.account.data)[offset_1 : offset_1 + 32] == bytes(Pubkey.from_string(mint_1))
    # the same filter with base64 bytes, raw, with context and a data slice
    b64 = base64.b64encode(bytes(Pubkey.from_string(mint_1))).decode()
    raw = await rpc(
        http,
        "getProgramAccounts",
        [
            str(program),
            {
                "encoding": "base64",
                "withContext": True,
                "dataSlice": {"offset": offset_1, "length": 32},
                "filters": [
                    {"dataSize": size},
                    {"memcmp": {"offset": offset_1, "bytes": b64, "encoding": "base64"}},
                ],
            },
        ],
    )
    value = raw["result"]["value"]
    assert raw["result"]["context"]["slot"] == 0
    assert [v["pubkey"] for v in value] == [str(found.pubkey)]
    assert base64.b64decode(value[0]["account"]["data"][0]) == bytes(Pubkey.from_string(mint_1))
    sliced = await client.get_program_accounts(
        program, encoding="base64", data_slice=DataSliceOpts(offset=0, length=8), filters=[size]
    )
    assert {bytes(a.account.data) for a in sliced.value} == {raydium_cpmm.DISC_POOL_STATE}
    # nothing matches: an empty list; an unknown program: an empty list
    assert (await client.get_program_accounts(program, encoding="base64", filters=[1])).value == []
    assert (await client.get_program_accounts(Pubkey.new_unique(), encoding="base64")).value == []


@pytest.mark.parametrize(
    "config",
    [
        {"filters": [{"dataSize": 1}] * 5},  # more than 4
        {"filters": [{"memcmp": {"offset": 0, "bytes": "0OIl"}}]},  # not base58
        {"filters": [{"memcmp": {"offset": 0, "bytes": "***", "encoding": "base64"}}]},
        {"filters": [{"memcmp": {"offset": 0, "bytes": "1", "encoding": "hex"}}]},
        {"filters": [{"memcmp": {"offset": -1, "bytes": "1"}}]},
        {"filters": [{"memcmp": {"offset": 0, "bytes": "A" * 172 + "==", "encoding": "base64"}}]},  # 129 B
        {"filters": [{"tokenAccountState": None}]},
        {"filters": {"dataSize": 1}},
        {"encoding": "base64+zstd"},
    ],
)
async def test_get_program_accounts_refuses_bad_params(
    http: httpx.AsyncClient, config: dict[str, Any]
) -> None:
    program = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
    resp = await rpc(http, "getProgramAccounts", [program, config])
    assert resp["error"]["code"] == -32602, resp
    assert (await rpc(http, "getProgramAccounts", ["nope"]))["error"]["code"] == -32602
