"""simchain.journal: with SIM_DATA_DIR a restarted chain keeps every transaction it landed."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from common.settings import REPO_ROOT
from common.stack import free_port
from simchain.journal import FILE_NAME, JournalError
from simchain.server import Running, start
from tests.simchain.conftest import UNIX_START, rpc, sim_settings
from tests.simchain.helpers import blockhash, memo, mint, plan_cpmm_swap, pool_by_name, sign, token_amount

SOL = 10**9


async def _swap(client: AsyncClient, wallet: Keypair, text: str) -> Signature:
    tx = await _swap_tx(client, wallet, text)
    return (await client.send_transaction(tx)).value


async def _swap_tx(client: AsyncClient, wallet: Keypair, text: str) -> VersionedTransaction:
    planned = await plan_cpmm_swap(
        client, pool_by_name("raydium_cpmm", "SOL/USDC"), wallet.pubkey(), mint("SOL"), SOL // 10
    )
    return sign(wallet, [planned.ix, memo(wallet.pubkey(), text)], await blockhash(client))


async def _state(url: str, wallet: Keypair) -> tuple[int, int, list[dict[str, object]]]:
    async with AsyncClient(url, commitment=Confirmed) as client, httpx.AsyncClient(base_url=url) as http:
        planned = await plan_cpmm_swap(
            client, pool_by_name("raydium_cpmm", "SOL/USDC"), wallet.pubkey(), mint("SOL"), SOL // 10
        )
        usdc = await token_amount(client, planned.user_out)
        lamports = (await client.get_balance(wallet.pubkey())).value
        swaps = (await rpc(http, "simSwaps", [{"memoPrefix": "j:"}]))["result"]
    return lamports, usdc, swaps


async def test_a_restarted_chain_keeps_what_it_landed(tmp_path: Path) -> None:
    settings = sim_settings(SIM_DATA_DIR=str(tmp_path))
    first = await start(settings, unix_start=UNIX_START, seed=1)
    second: Running | None = None
    try:
        wallet = Keypair()
        async with AsyncClient(first.url, commitment=Confirmed) as client:
            await client.request_airdrop(wallet.pubkey(), 100 * SOL)
            tx_a = await _swap_tx(client, wallet, "j:a")
            sig_a = (await client.send_transaction(tx_a)).value
            async with httpx.AsyncClient(base_url=first.url) as http:
                await rpc(http, "simWarpSlots", [3])
            sig_b = await _swap(client, wallet, "j:b")
            replay_b = sign(wallet, [memo(wallet.pubkey(), "j:resend")], await blockhash(client))
        before = await _state(first.url, wallet)
        slot_before = first.node.ledger.slot
        # a second node on the same directory while the first still runs: what the first answered
        # is on disk already (nothing waited for a stop or a close)
        second = await start(sim_settings(SIM_DATA_DIR=str(tmp_path)), seed=2)
        assert await _state(second.url, wallet) == before
        assert second.node.ledger.slot >= slot_before  # the warp is kept, time never runs back
        assert second.node.ledger.unix_start == UNIX_START  # the chain's own clock
        async with AsyncClient(second.url, commitment=Confirmed) as client:
            statuses = (await client.get_signature_statuses([sig_a, sig_b])).value
            assert all(s is not None and s.err is None for s in statuses)
            # the same bytes again: the status cache still knows them, nothing lands twice
            async with httpx.AsyncClient(base_url=second.url) as http:
                raw = base64.b64encode(bytes(tx_a)).decode()
                again = await rpc(http, "sendTransaction", [raw, {"encoding": "base64"}])
            assert again["error"]["data"]["err"] == "AlreadyProcessed", again
            # a new airdrop (numbered after the replayed ones) and a new transaction still land
            await client.request_airdrop(wallet.pubkey(), SOL)
            await client.send_transaction(replay_b)
        assert (await _state(second.url, wallet))[2] == before[2]
    finally:
        await first.stop()
        if second is not None:
            await second.stop()


def test_a_torn_last_line_is_dropped_and_another_chain_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        running = await start(sim_settings(SIM_DATA_DIR=str(tmp_path)), unix_start=UNIX_START)
        async with AsyncClient(running.url, commitment=Confirmed) as client:
            await client.request_airdrop(Keypair().pubkey(), SOL)
        await running.stop()
        journal = tmp_path / FILE_NAME
        good = journal.read_bytes()
        with open(journal, "ab") as f:
            f.write(b'{"k":"tx","s":12,"r":"AAAA')  # a write cut short by a crash
        running = await start(sim_settings(SIM_DATA_DIR=str(tmp_path)), unix_start=UNIX_START)
        assert running.node.ledger.transaction_count == 1  # the airdrop, replayed
        await running.stop()
        assert journal.read_bytes() == good
        with pytest.raises(JournalError, match=r"^SIM_DATA_DIR: .* holds another chain \(SIM_SLOT_MS=60000"):
            await start(sim_settings(SIM_DATA_DIR=str(tmp_path), SIM_SLOT_MS="400"))

    asyncio.run(run())


def test_sigkill_loses_nothing_the_node_answered(tmp_path: Path) -> None:
    """`python -m simchain` killed with SIGKILL right after answering: restarted, it has the
    transaction (what a validator that reported it processed must do)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SIM_PORT": str(port),
        "SIM_DATA_DIR": str(tmp_path),
        "SIM_SLOT_MS": "400",
        "LOG_LEVEL": "warning",
    }

    def node() -> subprocess.Popen[bytes]:
        popen = subprocess.Popen([sys.executable, "-m", "simchain"], cwd=tmp_path, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return popen
            except httpx.TransportError:
                pass
            assert popen.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)

    async def swap(url: str, wallet: Keypair) -> Signature:
        async with AsyncClient(url, commitment=Confirmed) as client:
            await client.request_airdrop(wallet.pubkey(), 10 * SOL)
            return await _swap(client, wallet, "j:kill")

    url = f"http://127.0.0.1:{port}"
    wallet = Keypair()
    popen = node()
    try:
        signature = asyncio.run(swap(url, wallet))
        popen.send_signal(signal.SIGKILL)
        popen.wait()
        popen = node()

        async def check() -> None:
            async with AsyncClient(url, commitment=Confirmed) as client:
                (status,) = (await client.get_signature_statuses([signature])).value
                assert status is not None and status.err is None
            async with httpx.AsyncClient(base_url=url) as http:
                (swap_,) = (await rpc(http, "simSwaps", [{"memoPrefix": "j:kill"}]))["result"]
            assert swap_["signature"] == str(signature)

        asyncio.run(check())
    finally:
        popen.kill()
        popen.wait()
