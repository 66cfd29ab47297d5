"""`make market` against the real Raydium CPMM and Meteora DLMM programs in LiteSVM: a wallet that
holds only SOL creates a token, a CPMM pool and a DLMM pair with liquidity through the programs' own
instructions, and both pools then trade, paying exactly the engine's own quotes.

Runs when DEX_PROGRAMS_DIR holds the binaries named in tests/fixtures/solana/README.md (see the
README's "Conformance"); skipped otherwise. The cluster's admins' accounts the command looks for (a
CPMM AmmConfig, a DLMM PresetParameter, the CPMM create-pool-fee wSOL account) are put in the SVM
first, as a cluster's admins would have made them."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from common.chain import AccountData, DataSize, Memcmp, ProgramAccount
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import (
    NATIVE_MINT,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    decode_token_account,
    encode_mint,
    encode_token_account,
)
from common.markets import Markets, parse_markets
from common.settings import load_settings
from executor_svc.builder import LegPlan, OrderPlan, TxBuilder
from executor_svc.builder import associated_token_address as ata
from executor_svc.market import (
    _PRESET,
    CREATE_POOL_FEE_RECEIVERS,
    DISC_PRESET_PARAMETER,
    MarketError,
    MarketMaker,
    MarketSpec,
    markets_document,
    rent_exempt,
)
from executor_svc.wallet import Wallet

PROGRAMS_DIR = os.environ.get("DEX_PROGRAMS_DIR", "")
CPMM = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
DLMM = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
BINARIES = {CPMM: "raydium_cp_swap.so", DLMM: "lb_clmm_prod.so"}
START_UNIX = 1_760_000_000

needs_programs = pytest.mark.skipif(not PROGRAMS_DIR, reason="DEX_PROGRAMS_DIR is not set")


class SvmMarketChain:
    """executor_svc.market.MarketChain answered by a LiteSVM. LiteSVM cannot list a program's
    accounts, so `get_program_accounts` filters the accounts this test put in (what a node's
    getProgramAccounts would find on a cluster holding just them)."""

    def __init__(self, svm: LiteSVM, listed: Sequence[Pubkey]) -> None:
        self.svm = svm
        self.listed = list(listed)

    async def get_multiple_accounts(
        self, keys: Sequence[Pubkey], max_age_s: float | None = None
    ) -> tuple[int, list[AccountData | None]]:
        out: list[AccountData | None] = []
        for key in keys:
            a = self.svm.get_account(key)
            out.append(None if a is None else AccountData(a.lamports, a.owner, bytes(a.data), a.executable))
        return self.svm.get_clock().slot, out

    async def get_program_accounts(
        self, program_id: Pubkey, filters: Sequence[Memcmp | DataSize]
    ) -> list[ProgramAccount]:
        found = []
        for key in self.listed:
            a = self.svm.get_account(key)
            if a is None or a.owner != program_id:
                continue
            data = bytes(a.data)
            if all(
                len(data) == f.size
                if isinstance(f, DataSize)
                else data[f.offset : f.offset + len(f.data)] == f.data
                for f in filters
            ):
                found.append(ProgramAccount(key, AccountData(a.lamports, a.owner, data, a.executable)))
        return found

    async def latest_blockhash(self) -> tuple[Hash, int]:
        return self.svm.latest_blockhash(), 2**63

    async def send_and_confirm(self, tx: VersionedTransaction, what: str) -> None:
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            logs = "\n".join(result.meta().logs()[-12:])
            raise MarketError(f"{what}: {result.err()}\n{logs}")
        self.svm.expire_blockhash()


def _put(svm: LiteSVM, address: Pubkey, owner: Pubkey, data: bytes) -> None:
    svm.set_account(
        address, Account(lamports=rent_exempt(len(data)), data=data, owner=owner, executable=False)
    )


def _cluster(tmp_path: Path) -> tuple[LiteSVM, SvmMarketChain, Keypair]:
    svm = LiteSVM()
    for program, name in BINARIES.items():
        path = Path(PROGRAMS_DIR) / name
        if not path.is_file():
            pytest.fail(f"DEX_PROGRAMS_DIR: {path} not found")
        svm.add_program(program, path.read_bytes())
    svm.set_clock(Clock(1_000, START_UNIX, 0, 0, START_UNIX))
    # the native mint, as every cluster has it
    _put(svm, NATIVE_MINT, TOKEN_PROGRAM_ID, encode_mint(Mint(TOKEN_PROGRAM_ID, None, 0, 9, True, None)))
    # what the programs' admins made on the cluster
    config_address = Pubkey.find_program_address([b"amm_config", (0).to_bytes(2, "big")], CPMM)[0]
    config = cpmm.AmmConfig(
        bump=255,
        disable_create_pool=False,
        index=0,
        trade_fee_rate=2500,
        protocol_fee_rate=120_000,
        fund_fee_rate=40_000,
        create_pool_fee=150_000_000,
        protocol_owner=Pubkey.new_unique(),
        fund_owner=Pubkey.new_unique(),
    )
    _put(svm, config_address, CPMM, cpmm.encode_amm_config(config))
    disabled = Pubkey.find_program_address([b"amm_config", (1).to_bytes(2, "big")], CPMM)[0]
    _put(
        svm,
        disabled,
        CPMM,
        cpmm.encode_amm_config(
            dataclasses.replace(config, index=1, trade_fee_rate=100, disable_create_pool=True)
        ),
    )
    receiver = Pubkey.from_string(CREATE_POOL_FEE_RECEIVERS[str(CPMM)])
    reserve = rent_exempt(165)
    svm.set_account(
        receiver,
        Account(
            lamports=reserve,
            data=encode_token_account(
                TokenAccount(TOKEN_PROGRAM_ID, NATIVE_MINT, Pubkey.new_unique(), 0, is_native=reserve)
            ),
            owner=TOKEN_PROGRAM_ID,
            executable=False,
        ),
    )
    preset = Pubkey.new_unique()
    _put(
        svm,
        preset,
        DLMM,
        DISC_PRESET_PARAMETER + _PRESET.pack(25, 10_000, 30, 600, 5000, 40_000, 350_000, -14065, 14065, 500),
    )
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 50 * 10**9)
    return svm, SvmMarketChain(svm, [config_address, disabled, preset]), payer


@needs_programs
async def test_a_wallet_with_only_sol_makes_a_market_that_trades_on_both_venues(tmp_path: Path) -> None:
    svm, chain, payer = _cluster(tmp_path)
    spec = MarketSpec(symbol="TEST", decimals=6, price=100.0, sol_per_pool=2 * 10**9)
    lines: list[str] = []
    made = await MarketMaker(chain, payer, {"raydium_cpmm": CPMM, "meteora_dlmm": DLMM}, lines.append).make(
        spec
    )

    # the markets file names the token and both pools, and the engine's parser accepts it
    base = {
        "cluster": "localnet",
        "programs": {"raydium_cpmm": str(CPMM), "meteora_dlmm": str(DLMM)},
        "tokens": [],
    }
    doc = markets_document(base, spec, made)
    (tmp_path / "markets.json").write_text(json.dumps(doc))
    markets = parse_markets(doc, "markets.json")
    assert markets.token("TEST") is not None and markets.token("SOL") is not None
    assert {(p.venue, str(p.address)) for p in markets.pools} == {
        ("raydium_cpmm", str(made.cpmm_pool)),
        ("meteora_dlmm", str(made.dlmm_pair)),
    }

    svm.set_clock(Clock(100_000, START_UNIX + 3600, 0, 0, START_UNIX + 3600))  # both pools open

    # CPMM: the pool the program made, read with our layout, quoted with our math, swapped for real
    raw = svm.get_account(made.cpmm_pool)
    assert raw is not None
    pool = cpmm.decode_pool_state(made.cpmm_pool, raw.owner, bytes(raw.data), CPMM)
    assert {pool.token_0_mint, pool.token_1_mint} == {NATIVE_MINT, made.mint}
    assert "AmmConfig" in lines[2] and "index 0" in lines[2], (
        lines
    )  # the enabled config, not the cheaper disabled one
    lines_text = "\n".join(lines)
    assert "raydium_cpmm: initialize pool" in lines_text and "meteora_dlmm: position" in lines_text

    # Both venues trade through the executor's own TxBuilder (the conformance adapter over the SVM):
    # 0.1 SOL in, TEST out, each paying exactly our quote with min-out set to that quote.
    now = svm.get_clock()
    amount_in = 10**8
    zero_for_one = pool.token_0_mint == NATIVE_MINT
    vaults = [svm.get_account(v) for v in (pool.token_0_vault, pool.token_1_vault)]
    assert vaults[0] is not None and vaults[1] is not None
    config_raw = svm.get_account(pool.amm_config)
    assert config_raw is not None
    cpmm_quote = cpmm.quote_exact_in(
        pool,
        cpmm.decode_amm_config(pool.amm_config, CPMM, bytes(config_raw.data), CPMM),
        decode_token_account(pool.token_0_vault, TOKEN_PROGRAM_ID, bytes(vaults[0].data)).amount,
        decode_token_account(pool.token_1_vault, TOKEN_PROGRAM_ID, bytes(vaults[1].data)).amount,
        amount_in,
        zero_for_one,
        now.unix_timestamp,
    ).amount_out
    assert cpmm_quote > 0
    assert (
        await _trade(svm, payer, markets, "raydium_cpmm", made.cpmm_pool, made.mint, amount_in, cpmm_quote)
        == cpmm_quote
    )

    raw_pair = svm.get_account(made.dlmm_pair)
    assert raw_pair is not None
    pair = dlmm.decode_lb_pair(made.dlmm_pair, raw_pair.owner, bytes(raw_pair.data), DLMM)
    assert {pair.token_x_mint, pair.token_y_mint} == {made.mint, NATIVE_MINT}
    arrays = {}
    for index in range(dlmm.bin_array_index(pair.active_id) - 1, dlmm.bin_array_index(pair.active_id) + 2):
        address = dlmm.bin_array_pda(DLMM, made.dlmm_pair, index)
        raw_array = svm.get_account(address)
        if raw_array is not None:
            arrays[index] = dlmm.decode_bin_array(address, DLMM, bytes(raw_array.data), DLMM)
    assert len(arrays) == 2
    dlmm_quote = dlmm.quote_exact_in(
        pair, arrays, amount_in, pair.token_x_mint == NATIVE_MINT, now.slot, now.unix_timestamp, now.epoch
    ).amount_out
    assert dlmm_quote > 0
    assert (
        await _trade(svm, payer, markets, "meteora_dlmm", made.dlmm_pair, made.mint, amount_in, dlmm_quote)
        == dlmm_quote
    )
    # about the opening price (100 TEST per SOL) on both venues, less fees and impact
    for quote in (cpmm_quote, dlmm_quote):
        assert 9 * 10**6 < quote < 10 * 10**6


async def _trade(
    svm: LiteSVM,
    payer: Keypair,
    markets: Markets,
    venue: str,
    pool: Pubkey,
    mint: Pubkey,
    amount_in: int,
    min_out: int,
) -> int:
    """One market order SOL → `mint` on `pool`, built, simulated and signed by the executor's
    TxBuilder; returns what the wallet received."""
    from tests.conformance.test_real_programs import SvmChain

    chain = SvmChain(svm, payer)
    settings = load_settings({}, dotenv=Path("/nonexistent"))
    builder = TxBuilder(chain, markets, Wallet(payer), settings)  # type: ignore[arg-type]
    plan = OrderPlan(
        str(uuid.uuid4()), 1, NATIVE_MINT, mint, amount_in, (LegPlan(venue, pool, amount_in, min_out),)
    )
    built = await builder.build(plan)
    out_ata = ata(payer.pubkey(), mint, TOKEN_PROGRAM_ID)
    before = svm.get_account(out_ata)
    held = decode_token_account(out_ata, TOKEN_PROGRAM_ID, bytes(before.data)).amount if before else 0
    result = svm.send_transaction(built.tx)
    assert not isinstance(result, FailedTransactionMetadata), "\n".join(result.meta().logs())
    svm.expire_blockhash()
    after = svm.get_account(out_ata)
    assert after is not None
    return decode_token_account(out_ata, TOKEN_PROGRAM_ID, bytes(after.data)).amount - held


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAIN": "devnet"}, "config error: SOLANA_RPC_URL: required when CHAIN=devnet"),
        ({"CHAIN": "devnet", "SOLANA_RPC_URL": "http://127.0.0.1:9"}, "market: KEYPAIR_PATH: "),
    ],
)
def test_the_command_names_what_is_missing(tmp_path: Path, env: dict[str, str], message: str) -> None:
    import subprocess
    import sys

    from common.settings import REPO_ROOT

    keep = {k: v for k, v in os.environ.items() if k not in ("SOLANA_RPC_URL", "KEYPAIR_PATH", "PRIVATE_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "executor_svc.market", "--write", str(tmp_path / "m.json")],
        cwd=tmp_path,
        env={**keep, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
    assert not (tmp_path / "m.json").exists()
