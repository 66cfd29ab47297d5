"""Throughput of the simulated chain from concurrent solana-py AsyncClients.

    python -m bench.bench_simchain [--clients 32] [--seconds 5] [--txs 20000]

Starts ``python -m simchain`` as a process of its own on a free port (as in the stack), funds a
wallet with requestAirdrop, pre-signs swap transactions the way the executor builds them (Raydium
CPMM and Meteora DLMM alternating, each with compute-budget instructions and an
``oe:<order>:<attempt>`` memo), then, from ``--clients`` concurrent AsyncClients in this process:

- ``getMultipleAccounts``: the router's per-slot read (5 pools, their vaults/reserves, the DLMM
  bin arrays around the active bins, the clock);
- ``sendTransaction``: the pre-signed swaps, preflight on, every one landing;
- ``getSignatureStatuses`` with 256 signatures, and ``getLatestBlockhash``.

Prints per case requests/s, p50/p99 latency, the node's CPU use and CPU time per call (so its
capacity per core), and this process's CPU use. Client and node share the machine's cores, and the
solana-py client often costs more CPU per call than the node does, so requests/s is a floor for
the node's capacity; the per-call CPU time is the figure to compare (the load average is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import associated_token_address
from common.markets import Markets, load_markets
from common.settings import REPO_ROOT

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
CLOCK = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("python -m simchain exited during start-up")
            try:
                if (await http.get(url + "/health")).text == "ok":
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the simulated chain did not become ready")


async def _account(client: AsyncClient, key: Pubkey) -> tuple[Pubkey, bytes]:
    value = (await client.get_account_info(key)).value
    assert value is not None, key
    return value.owner, bytes(value.data)


class SwapFactory:
    """Builds swap instructions on the genesis pools for one wallet (amount varies per order)."""

    def __init__(self, markets: Markets, wallet: Pubkey) -> None:
        self.markets = markets
        self.wallet = wallet
        self.templates: list[Callable[[int], Instruction]] = []
        self.read_keys: list[Pubkey] = [CLOCK]

    async def load(self, client: AsyncClient) -> None:
        cpmm_id = self.markets.program_id("raydium_cpmm")
        dlmm_id = self.markets.program_id("meteora_dlmm")
        sol = Pubkey.from_string("So11111111111111111111111111111111111111112")
        for ref in self.markets.pools:
            key = Pubkey.from_string(ref.address)
            self.read_keys.append(key)
            owner, data = await _account(client, key)
            if ref.venue == "raydium_cpmm":
                state = cpmm.decode_pool_state(key, owner, data, cpmm_id)
                self.read_keys += [state.token_0_vault, state.token_1_vault, state.amm_config]
                if sol not in (state.token_0_mint, state.token_1_mint):
                    continue
                self.templates.append(self._cpmm(cpmm_id, key, state, sol))
            else:
                pair = dlmm.decode_lb_pair(key, owner, data, dlmm_id)
                arrays = {*dlmm.bin_arrays_for_swap(pair, True, 2), *dlmm.bin_arrays_for_swap(pair, False, 2)}
                self.read_keys += [pair.reserve_x, pair.reserve_y]
                self.read_keys += [dlmm.bin_array_pda(dlmm_id, key, i) for i in sorted(arrays)]
                if pair.token_x_mint != sol:
                    continue
                self.templates.append(self._dlmm(dlmm_id, key, pair))

    def _cpmm(self, program_id: Pubkey, key: Pubkey, state: Any, sol: Pubkey) -> Callable[[int], Instruction]:
        zero_for_one = state.token_0_mint == sol
        if zero_for_one:
            mints, vaults = (
                (state.token_0_mint, state.token_1_mint),
                (state.token_0_vault, state.token_1_vault),
            )
        else:
            mints, vaults = (
                (state.token_1_mint, state.token_0_mint),
                (state.token_1_vault, state.token_0_vault),
            )
        user_in = associated_token_address(self.wallet, mints[0], TOKEN_PROGRAM)
        user_out = associated_token_address(self.wallet, mints[1], TOKEN_PROGRAM)

        def build(amount: int) -> Instruction:
            return cpmm.swap_base_input_ix(
                program_id, self.wallet, key, state.amm_config, user_in, user_out, vaults[0], vaults[1],
                TOKEN_PROGRAM, TOKEN_PROGRAM, mints[0], mints[1], state.observation_key, amount, 1,
            )  # fmt: skip

        return build

    def _dlmm(self, program_id: Pubkey, key: Pubkey, pair: Any) -> Callable[[int], Instruction]:
        arrays = [dlmm.bin_array_pda(program_id, key, i) for i in dlmm.bin_arrays_for_swap(pair, True, 3)]
        user_x = associated_token_address(self.wallet, pair.token_x_mint, TOKEN_PROGRAM)
        user_y = associated_token_address(self.wallet, pair.token_y_mint, TOKEN_PROGRAM)

        def build(amount: int) -> Instruction:
            return dlmm.swap2_ix(
                program_id, key, None, pair.reserve_x, pair.reserve_y, user_x, user_y, pair.token_x_mint,
                pair.token_y_mint, pair.oracle, None, self.wallet, TOKEN_PROGRAM, TOKEN_PROGRAM, MEMO_PROGRAM,
                arrays, amount, 1,
            )  # fmt: skip

        return build


def _sign_swaps(factory: SwapFactory, payer: Keypair, blockhash: Hash, n: int) -> list[VersionedTransaction]:
    out = []
    for i in range(n):
        swap = factory.templates[i % len(factory.templates)](1_000_000 + i)  # ~0.001 SOL, unique
        memo = Instruction(
            MEMO_PROGRAM, f"oe:bench-{i}:1".encode(), [AccountMeta(payer.pubkey(), True, False)]
        )
        ixs = [set_compute_unit_limit(200_000), set_compute_unit_price(1_000), swap, memo]
        out.append(VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash), [payer]))
    return out


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (0.0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    name: str,
    clients: list[AsyncClient],
    seconds: float,
    make_call: Callable[[AsyncClient], Awaitable[Any] | None],
    server_pid: int,
) -> None:
    """Runs `make_call` from every client until `seconds` pass or it returns None; prints rates."""
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            call = make_call(client)
            if call is None:
                return
            t = time.perf_counter()
            await call
            latencies.append(time.perf_counter() - t)
            done += 1

    start = time.perf_counter()
    cpu0 = time.process_time()
    server0 = _process_cpu(server_pid)
    await asyncio.gather(*(worker(c) for c in clients))
    wall = time.perf_counter() - start
    client_cpu = time.process_time() - cpu0
    server_cpu = _process_cpu(server_pid) - server0
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0.0] * 99
    per_call = server_cpu / done * 1e6 if done else 0.0
    capacity = 1e6 / per_call if per_call else 0.0
    print(
        f"{name:<42} {done / wall:>7,.0f} req/s  p50 {q[49] * 1e3:6.2f} ms  p99 {q[98] * 1e3:6.2f} ms  "
        f"node CPU {server_cpu / wall:4.0%} = {per_call:,.0f} us/call (~{capacity:,.0f}/s per core)  "
        f"client CPU {client_cpu / wall:4.0%}",
        flush=True,
    )


async def run(args: argparse.Namespace) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SIM_HOST": "127.0.0.1", "SIM_PORT": str(port), "SIM_SLOT_MS": str(args.slot_ms)}
    env.update({"SIM_LATENCY_MS": "0", "SIM_FAIL_RATE": "0", "SIM_DROP_RATE": "0", "LOG_LEVEL": "warning"})
    proc = subprocess.Popen([sys.executable, "-m", "simchain"], env=env, cwd=REPO_ROOT)
    try:
        await _wait_ready(url, proc)
        markets = load_markets(REPO_ROOT / "markets" / "sim.json")
        clients = [AsyncClient(url, commitment=Confirmed, timeout=30) for _ in range(args.clients)]
        try:
            payer = Keypair()
            await clients[0].request_airdrop(payer.pubkey(), 10_000 * 10**9)
            factory = SwapFactory(markets, payer.pubkey())
            await factory.load(clients[0])
            blockhash = (await clients[0].get_latest_blockhash()).value.blockhash
            t = time.perf_counter()
            txs = _sign_swaps(factory, payer, blockhash, args.txs)
            print(f"pre-signed {len(txs):,} swap transactions in {time.perf_counter() - t:.1f} s; "
                  f"{args.clients} clients, {os.cpu_count()} CPUs")  # fmt: skip

            keys = factory.read_keys
            await _load(
                f"getMultipleAccounts ({len(keys)} pool accounts)",
                clients,
                args.seconds,
                lambda c: c.get_multiple_accounts(keys),
                proc.pid,
            )
            await _load(
                "getLatestBlockhash", clients, args.seconds, lambda c: c.get_latest_blockhash(), proc.pid
            )

            tx_iter: Iterator[VersionedTransaction] = iter(txs)
            sent: list[Signature] = []
            opts = TxOpts(skip_preflight=False, preflight_commitment=Confirmed)

            def send(c: AsyncClient) -> Awaitable[Any] | None:
                tx = next(tx_iter, None)
                if tx is None:
                    return None
                sent.append(tx.signatures[0])
                return c.send_transaction(tx, opts=opts)

            await _load("sendTransaction (CPMM/DLMM swap + memo)", clients, args.seconds, send, proc.pid)
            batch = sent[:256]
            statuses = await clients[0].get_signature_statuses(batch)
            landed = sum(1 for s in statuses.value if s is not None and s.err is None)
            print(f"  {landed}/{len(batch)} of the first sent swaps confirmed without error")
            await _load(
                "getSignatureStatuses (256 signatures)",
                clients,
                args.seconds,
                lambda c: c.get_signature_statuses(batch),
                proc.pid,
            )
            async with httpx.AsyncClient() as http:
                swaps = (await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "simSwaps"})).json()
            print(f"  simSwaps reports {len(swaps['result']):,} landed swaps")
        finally:
            for c in clients:
                await c.close()
        print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_simchain", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent AsyncClients (default 32)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each case (default 5)")
    parser.add_argument(
        "--txs", type=int, default=20_000, help="pre-signed swap transactions (default 20000)"
    )
    parser.add_argument("--slot-ms", type=int, default=400, help="SIM_SLOT_MS of the node (default 400)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
