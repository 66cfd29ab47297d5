"""Transaction gates and execution semantics, through sendTransaction/simulateTransaction."""

from __future__ import annotations

import httpx
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from simchain.ledger import minimum_balance
from tests.simchain.conftest import rpc
from tests.simchain.helpers import blockhash, send, sign, simulate

SOL = 10**9


def _transfer(src: Keypair, dst: Pubkey, lamports: int):  # type: ignore[no-untyped-def]
    return transfer(TransferParams(from_pubkey=src.pubkey(), to_pubkey=dst, lamports=lamports))


def _preflight_err(exc: RPCException) -> SendTransactionPreflightFailureMessage:
    inner = exc.args[0]
    assert isinstance(inner, SendTransactionPreflightFailureMessage), inner
    return inner


async def test_transfer_lands_and_charges_the_fee(client: AsyncClient, wallet: Keypair) -> None:
    dst = Pubkey.new_unique()
    before = (await client.get_balance(wallet.pubkey())).value
    sig = await send(client, sign(wallet, [_transfer(wallet, dst, SOL)], await blockhash(client)))
    assert (await client.get_balance(dst)).value == SOL
    assert (await client.get_balance(wallet.pubkey())).value == before - SOL - 5000
    status = (await client.get_signature_statuses([sig])).value[0]
    assert status is not None and status.err is None
    assert str(status.confirmation_status) == "TransactionConfirmationStatus.Confirmed"


async def test_priority_fee_and_two_signers(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    other = Keypair()
    await client.request_airdrop(other.pubkey(), SOL)
    await rpc(http, "simWarpSlots", [1])  # a slot of its own: the airdrops paid no priority fee
    ixs = [
        set_compute_unit_limit(10_000),
        set_compute_unit_price(250_000),  # micro-lamports per unit: ceil(10_000 * 0.25) = 2_500
        _transfer(wallet, Pubkey.new_unique(), 1_000_000),
        _transfer(other, Pubkey.new_unique(), 1_000_000),
    ]
    before = (await client.get_balance(wallet.pubkey())).value
    await send(client, sign(wallet, ixs, await blockhash(client), other))
    assert (await client.get_balance(wallet.pubkey())).value == before - 1_000_000 - 2 * 5000 - 2_500
    fees = await client.get_recent_prioritization_fees([wallet.pubkey()])
    assert fees.value[-1].prioritization_fee == 250_000


async def test_expired_blockhash_is_rejected(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    recent = await blockhash(client)
    latest = await client.get_latest_blockhash()
    assert latest.value.last_valid_block_height == latest.context.slot + 150

    async def valid() -> bool:
        return bool(
            (await rpc(http, "isBlockhashValid", [str(recent), {"commitment": "confirmed"}]))["result"][
                "value"
            ]
        )

    assert await valid()
    await rpc(http, "simWarpSlots", [{"n": 150}])
    assert await valid()  # still usable at lastValidBlockHeight
    await rpc(http, "simWarpSlots", [{"n": 1}])
    assert not await valid()
    tx = sign(wallet, [_transfer(wallet, Pubkey.new_unique(), 1)], recent)
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    err = _preflight_err(info.value)
    assert err.message == "Transaction simulation failed: Blockhash not found"
    assert "BlockhashNotFound" in str(err.data.err)
    # without preflight the node forwards it and no leader includes it
    sig = await send(client, tx, skip_preflight=True)
    assert (await client.get_signature_statuses([sig])).value == [None]


async def test_bad_signature_is_rejected(client: AsyncClient, wallet: Keypair) -> None:
    tx = sign(wallet, [_transfer(wallet, Pubkey.new_unique(), SOL)], await blockhash(client))
    forged = VersionedTransaction.populate(tx.message, [Signature.from_bytes(bytes(64))])
    with pytest.raises(RPCException) as info:
        await send(client, forged)
    assert "TransactionSignatureVerificationFailure" in str(info.value)
    sig = await send(client, forged, skip_preflight=True)
    assert (await client.get_signature_statuses([sig])).value == [None]
    # signed by the wrong key
    wrong = VersionedTransaction.populate(tx.message, [Keypair().sign_message(bytes(tx.message))])
    with pytest.raises(RPCException):
        await send(client, wrong)
    sim = await client.simulate_transaction(forged)  # sigVerify defaults to false
    assert sim.value.err is None
    with pytest.raises(RPCException):
        await client.simulate_transaction(forged, sig_verify=True)


async def test_duplicate_is_rejected(client: AsyncClient, wallet: Keypair) -> None:
    dst = Pubkey.new_unique()
    tx = sign(wallet, [_transfer(wallet, dst, SOL)], await blockhash(client))
    await send(client, tx)
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert "AlreadyProcessed" in str(_preflight_err(info.value).data.err)
    await send(client, tx, skip_preflight=True)  # forwarded, dropped by the status cache
    assert (await client.get_balance(dst)).value == SOL


async def test_failed_instruction_is_atomic_and_charges_only_the_fee(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    dst = Pubkey.new_unique()
    before = (await client.get_balance(wallet.pubkey())).value
    ixs = [_transfer(wallet, dst, SOL), _transfer(wallet, dst, 10**6 * SOL)]
    tx = sign(wallet, ixs, await blockhash(client))
    sim = await simulate(http, tx)
    assert sim["err"] == {"InstructionError": [1, {"Custom": 1}]}
    assert any("Transfer: insufficient lamports" in line for line in sim["logs"])
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert _preflight_err(info.value).message.startswith(
        "Transaction simulation failed: Error processing Instruction 1: custom program error: 0x1"
    )
    assert (await client.get_balance(wallet.pubkey())).value == before  # preflight failure: nothing charged
    sig = await send(client, tx, skip_preflight=True)
    status = (await client.get_signature_statuses([sig])).value[0]
    assert status is not None and status.err is not None
    assert (await client.get_balance(dst)).value == 0
    assert (await client.get_balance(wallet.pubkey())).value == before - 5000


async def test_fee_payer_gates(client: AsyncClient, wallet: Keypair) -> None:
    broke = Keypair()
    tx = sign(broke, [_transfer(broke, Pubkey.new_unique(), 1)], await blockhash(client))
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert "AccountNotFound" in str(_preflight_err(info.value).data.err)
    # leaving the payer below rent exemption
    poor = Keypair()
    await send(
        client,
        sign(
            wallet, [_transfer(wallet, poor.pubkey(), minimum_balance(0) + 10_000)], await blockhash(client)
        ),
    )
    tx = sign(poor, [_transfer(poor, Pubkey.new_unique(), minimum_balance(0))], await blockhash(client))
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert "InsufficientFundsForRent" in str(_preflight_err(info.value).data.err)
    # a new account funded below rent exemption
    tx = sign(wallet, [_transfer(wallet, Pubkey.new_unique(), 1000)], await blockhash(client))
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert "InsufficientFundsForRent" in str(_preflight_err(info.value).data.err)


async def test_compute_budget(client: AsyncClient, wallet: Keypair) -> None:
    ixs = [set_compute_unit_limit(100), _transfer(wallet, Pubkey.new_unique(), SOL)]
    sim = await client.simulate_transaction(sign(wallet, ixs, await blockhash(client)))
    assert "ComputationalBudgetExceeded" in str(sim.value.err)
    dup = [
        set_compute_unit_limit(10_000),
        set_compute_unit_limit(20_000),
        _transfer(wallet, Pubkey.new_unique(), SOL),
    ]
    sim = await client.simulate_transaction(sign(wallet, dup, await blockhash(client)))
    assert "DuplicateInstruction" in str(sim.value.err)
    ok = [set_compute_unit_limit(1_000), _transfer(wallet, Pubkey.new_unique(), SOL)]
    sim = await client.simulate_transaction(sign(wallet, ok, await blockhash(client)))
    assert sim.value.err is None and sim.value.units_consumed == 300


async def test_legacy_message_and_readonly_accounts(client: AsyncClient, wallet: Keypair) -> None:
    dst = Pubkey.new_unique()
    ix = _transfer(wallet, dst, SOL)
    msg = Message.new_with_blockhash([ix], wallet.pubkey(), await blockhash(client))
    await send(client, VersionedTransaction(msg, [wallet]))
    assert (await client.get_balance(dst)).value == SOL
    # the same transfer with the destination marked read-only
    from solders.instruction import AccountMeta, Instruction

    ro = Instruction(ix.program_id, ix.data, [ix.accounts[0], AccountMeta(dst, False, False)])
    sim = await client.simulate_transaction(sign(wallet, [ro], await blockhash(client)))
    assert "ReadonlyLamportChange" in str(sim.value.err)


async def test_unknown_program_never_lands(client: AsyncClient, wallet: Keypair) -> None:
    from solders.instruction import Instruction

    ix = Instruction(Pubkey.new_unique(), b"\x01", [])
    tx = sign(wallet, [ix], await blockhash(client))
    with pytest.raises(RPCException) as info:
        await send(client, tx)
    assert "ProgramAccountNotFound" in str(_preflight_err(info.value).data.err)


async def test_rate_limited_send_raises_http_429(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    await rpc(http, "simSetFaults", [{"failRate": 1.0}])
    dst = Pubkey.new_unique()
    tx = sign(wallet, [_transfer(wallet, dst, SOL)], await blockhash(client))
    with pytest.raises(SolanaRpcException) as info:
        await send(client, tx)
    cause = info.value.__cause__
    assert getattr(getattr(cause, "response", None), "status_code", None) == 429
    assert (await client.get_balance(dst)).value == 0  # nothing executed
    await rpc(http, "simSetFaults", [{"failRate": 0.0}])
    await send(client, tx)  # the same bytes land once the limit is lifted
    assert (await client.get_balance(dst)).value == SOL


async def test_dropped_send_returns_the_signature_but_never_lands(
    client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    await rpc(http, "simSetFaults", [{"dropRate": 1.0}])
    dst = Pubkey.new_unique()
    tx = sign(wallet, [_transfer(wallet, dst, SOL)], await blockhash(client))
    sig = await send(client, tx)
    assert sig == tx.signatures[0]
    assert (await client.get_signature_statuses([sig])).value == [None]
    assert (await client.get_balance(dst)).value == 0
    await rpc(http, "simSetFaults", [{"dropRate": 0}])
    await send(client, tx)  # a rebroadcast of the same bytes lands
    assert (await client.get_signature_statuses([sig])).value[0] is not None
