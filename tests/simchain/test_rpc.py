"""The JSON-RPC methods' shapes, through the typed solana-py client and raw requests."""

from __future__ import annotations

import base64

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
