"""The simulated chain's genesis: tokens, pools, programs, the faucet. Deterministic.

Tokens: SOL (the native mint ``So111…112``, 9 decimals), USDC, USDT and NEW (6 decimals; mints are
the public keys of keypairs derived from fixed seeds), all SPL Token. NEW has no pool at genesis:
its pools appear later, made by the pool creator (a seeded keypair holding SOL and 10^9 of every
token) through the programs' own instructions when the admin method ``simCreatePool`` is called.
Pools, built with `common.dex.synthetic` in the programs' real layouts:

=========  ============  ===========  =====================================================
pair       venue         price        depth
=========  ============  ===========  =====================================================
SOL/USDC   raydium_cpmm  150.00       50,000 SOL + 7,500,000 USDC (0.25 % fee)
SOL/USDC   meteora_dlmm  ~150.45      25,000 SOL + 3,761,250 USDC over ±150 bins of 2 bps
SOL/USDT   raydium_cpmm  149.90       30,000 SOL + 4,497,000 USDT (0.25 % fee)
SOL/USDT   meteora_dlmm  ~150.20      15,000 SOL + 2,253,000 USDT over ±150 bins of 2 bps
USDT/USDC  meteora_dlmm  ~1.0001      5,000,000 each over ±100 bins of 1 bp
=========  ============  ===========  =====================================================

A 1–10 SOL order moves a CPMM price by 0.4–4 bps and stays within a bin or two on DLMM, so the
spread between venues decides the route (DLMM for SOL sells, CPMM for SOL buys).

The DEX program ids are parameters. ``python -m simchain.genesis --write markets/sim.json`` writes
the markets file of this genesis, taking the program ids from ``--raydium-cpmm`` /
``--meteora-dlmm`` or else from the file being rewritten; the server builds the same genesis from
that file's program ids and refuses to start if its tokens or pools differ from the file's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from common.dex import raydium_cpmm as cpmm
from common.dex import synthetic
from common.dex.spl_token import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    associated_token_address,
    decode_mint,
    encode_mint,
    encode_token_account,
)
from simchain.ledger import (
    BPF_LOADER_2,
    BPF_LOADER_UPGRADEABLE,
    NATIVE_LOADER,
    SYSTEM_PROGRAM_ID,
    Account,
    Ledger,
    minimum_balance,
)
from simchain.programs.memo import MEMO_PROGRAM_ID, MEMO_V1_PROGRAM_ID
from simchain.runtime import COMPUTE_BUDGET_PROGRAM_ID

CLUSTER: Final = "sim"
FAUCET_LAMPORTS: Final = 500_000_000 * 10**9
AIRDROP_TOKENS: Final = 1_000_000  # whole tokens of each genesis token per airdropped wallet


def _seeded_keypair(label: str) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(b"simchain:" + label.encode()).digest())


@dataclass(frozen=True)
class GenesisToken:
    symbol: str
    mint: Pubkey
    decimals: int
    token_program: Pubkey


@dataclass(frozen=True)
class GenesisPool:
    venue: str
    name: str
    address: Pubkey


@dataclass(frozen=True)
class _PoolSpec:
    venue: str
    base: str
    quote: str
    price: Fraction  # quote per base, whole tokens
    base_amount: int  # whole tokens
    quote_amount: int
    bin_step: int = 0
    bins_each_side: int = 0


# NEW has no pool at genesis: a token for sniper orders, whose pool is created later (simCreatePool).
_TOKENS: Final = (("SOL", 9), ("USDC", 6), ("USDT", 6), ("NEW", 6))
CREATOR_LAMPORTS: Final = 10_000_000 * 10**9
CREATOR_TOKENS: Final = 1_000_000_000  # whole tokens of each genesis token the pool creator holds
_POOLS: Final = (
    _PoolSpec("raydium_cpmm", "SOL", "USDC", Fraction(150), 50_000, 7_500_000),
    _PoolSpec("meteora_dlmm", "SOL", "USDC", Fraction("150.45"), 25_000, 3_761_250, 2, 150),
    _PoolSpec("raydium_cpmm", "SOL", "USDT", Fraction("149.90"), 30_000, 4_497_000),
    _PoolSpec("meteora_dlmm", "SOL", "USDT", Fraction("150.20"), 15_000, 2_253_000, 2, 150),
    _PoolSpec("meteora_dlmm", "USDT", "USDC", Fraction("1.0001"), 5_000_000, 5_000_000, 1, 100),
)


class Genesis:
    """Every account of the first slot, and what the markets file says about them."""

    def __init__(self, programs: Mapping[str, Pubkey]) -> None:
        self.programs = dict(programs)
        self.faucet = _seeded_keypair("faucet")
        self.mint_authority = _seeded_keypair("mint-authority")
        # Signs the pools simCreatePool makes (rpc.Node.sim_create_pool): SOL and every token.
        self.pool_creator = _seeded_keypair("pool-creator")
        self.tokens: tuple[GenesisToken, ...] = tuple(
            GenesisToken(
                symbol,
                NATIVE_MINT if symbol == "SOL" else _seeded_keypair(f"mint:{symbol}").pubkey(),
                decimals,
                TOKEN_PROGRAM_ID,
            )
            for symbol, decimals in _TOKENS
        )
        by_symbol = {t.symbol: t for t in self.tokens}
        self.accounts: dict[Pubkey, Account] = {}
        supply: dict[Pubkey, int] = {t.mint: 0 for t in self.tokens}
        pools: list[GenesisPool] = []
        for spec in _POOLS:
            base, quote = by_symbol[spec.base], by_symbol[spec.quote]
            base_raw = spec.base_amount * 10**base.decimals
            quote_raw = spec.quote_amount * 10**quote.decimals
            program_id = self.programs[spec.venue]
            if spec.venue == "raydium_cpmm":
                amounts = synthetic.make_cpmm_pool(
                    program_id,
                    base.mint,
                    quote.mint,
                    base.decimals,
                    quote.decimals,
                    base_raw,
                    quote_raw,
                    include_mints=False,
                )
            else:
                amounts = synthetic.make_dlmm_pair(
                    program_id,
                    base.mint,
                    quote.mint,
                    base.decimals,
                    quote.decimals,
                    spec.price,
                    bin_step=spec.bin_step,
                    liquidity_x=base_raw,
                    liquidity_y=quote_raw,
                    bins_each_side=spec.bins_each_side,
                    include_mints=False,
                )
            address = next(iter(amounts))
            pools.append(GenesisPool(spec.venue, f"{spec.base}/{spec.quote}", address))
            for key, (owner, data, lamports) in amounts.items():
                if key in self.accounts:
                    if self.accounts[key].data != data:  # shared accounts (an AmmConfig) are identical
                        raise ValueError(f"genesis: account {key} created twice")
                    continue
                self.accounts[key] = Account(lamports, owner, data)
                if owner in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) and len(data) >= 165:
                    held = Pubkey.from_bytes(data[:32])
                    if held in supply:
                        supply[held] += int.from_bytes(data[64:72], "little")
        self.pools: tuple[GenesisPool, ...] = tuple(pools)
        self._add_creator(supply)
        for token in self.tokens:
            mint = Mint(
                program_id=token.token_program,
                mint_authority=None if token.mint == NATIVE_MINT else self.mint_authority.pubkey(),
                supply=0 if token.mint == NATIVE_MINT else supply[token.mint],
                decimals=token.decimals,
                is_initialized=True,
                freeze_authority=None,
            )
            data = encode_mint(mint)
            self.accounts[token.mint] = Account(minimum_balance(len(data)), token.token_program, data)
        self.accounts[self.faucet.pubkey()] = Account(FAUCET_LAMPORTS, SYSTEM_PROGRAM_ID)
        self._add_program_accounts()

    def _add_creator(self, supply: dict[Pubkey, int]) -> None:
        """The pool creator's SOL and token accounts, and the wSOL account each CPMM deployment's
        `initialize` sends its pool-creation fee to."""
        creator = self.pool_creator.pubkey()
        self.accounts[creator] = Account(CREATOR_LAMPORTS, SYSTEM_PROGRAM_ID)
        reserve = minimum_balance(165)
        for token in self.tokens:
            ata = associated_token_address(creator, token.mint, token.token_program)
            amount = CREATOR_TOKENS * 10**token.decimals
            native = token.mint == NATIVE_MINT
            data = encode_token_account(
                TokenAccount(
                    token.token_program, token.mint, creator, amount, is_native=reserve if native else None
                )
            )
            self.accounts[ata] = Account(reserve + (amount if native else 0), token.token_program, data)
            if not native:
                supply[token.mint] += amount
        receiver = cpmm.CREATE_POOL_FEE_RECEIVERS.get(str(self.programs.get("raydium_cpmm")))
        if receiver is not None:
            owner = _seeded_keypair("create-pool-fee").pubkey()
            data = encode_token_account(
                TokenAccount(TOKEN_PROGRAM_ID, NATIVE_MINT, owner, 0, is_native=reserve)
            )
            self.accounts[Pubkey.from_string(receiver)] = Account(reserve, TOKEN_PROGRAM_ID, data)

    def _add_program_accounts(self) -> None:
        for pid in (SYSTEM_PROGRAM_ID, COMPUTE_BUDGET_PROGRAM_ID):
            self.accounts[pid] = Account(1, NATIVE_LOADER, b"", executable=True)
        for pid in (
            TOKEN_PROGRAM_ID,
            TOKEN_2022_PROGRAM_ID,
            ASSOCIATED_TOKEN_PROGRAM_ID,
            MEMO_PROGRAM_ID,
            MEMO_V1_PROGRAM_ID,
        ):
            self.accounts[pid] = Account(1_141_440, BPF_LOADER_2, b"", executable=True)
        for pid in self.programs.values():
            programdata = Pubkey.find_program_address([bytes(pid)], BPF_LOADER_UPGRADEABLE)[0]
            data = (2).to_bytes(4, "little") + bytes(programdata)
            self.accounts[pid] = Account(
                minimum_balance(len(data)), BPF_LOADER_UPGRADEABLE, data, executable=True
            )

    def markets_doc(self) -> dict[str, Any]:
        """The markets file of this genesis (see DESIGN.md, "Chains")."""
        return {
            "cluster": CLUSTER,
            "programs": {venue: str(pid) for venue, pid in sorted(self.programs.items())},
            "tokens": [
                {"symbol": t.symbol, "mint": str(t.mint), "decimals": t.decimals} for t in self.tokens
            ],
            "pools": [{"venue": p.venue, "address": str(p.address), "name": p.name} for p in self.pools],
        }

    def load_into(self, ledger: Ledger) -> None:
        for key, acct in self.accounts.items():
            ledger.put(key, acct)

    def airdrop_tokens(self, ledger: Ledger, wallet: Pubkey) -> None:
        """SIM EXTENSION of requestAirdrop: give `wallet` an associated token account holding
        AIRDROP_TOKENS of every genesis token (wSOL included), created where missing."""
        for token in self.tokens:
            ata = associated_token_address(wallet, token.mint, token.token_program)
            if ledger.get(ata) is not None:
                continue
            amount = AIRDROP_TOKENS * 10**token.decimals
            native = token.mint == NATIVE_MINT
            reserve = minimum_balance(165)
            data = encode_token_account(
                TokenAccount(
                    program_id=token.token_program,
                    mint=token.mint,
                    owner=wallet,
                    amount=amount,
                    is_native=reserve if native else None,
                )
            )
            ledger.put(ata, Account(reserve + (amount if native else 0), token.token_program, data))
            if not native:
                mint_acct = ledger.get(token.mint)
                assert mint_acct is not None
                mint = decode_mint(token.mint, mint_acct.owner, mint_acct.data)
                new_mint = Mint(
                    program_id=mint.program_id,
                    mint_authority=mint.mint_authority,
                    supply=mint.supply + amount,
                    decimals=mint.decimals,
                    is_initialized=True,
                    freeze_authority=mint.freeze_authority,
                )
                ledger.put(token.mint, mint_acct.replace(data=encode_mint(new_mint)))


def build_genesis(programs: Mapping[str, str | Pubkey]) -> Genesis:
    """The genesis for these DEX program ids (``{"raydium_cpmm": id, "meteora_dlmm": id}``).

    Built once per set of ids: a Genesis is never mutated (its accounts are immutable objects that
    a ledger replaces, never changes), so every node of the process can share it.
    """
    ids: list[Pubkey] = []
    for venue in ("raydium_cpmm", "meteora_dlmm"):
        if venue not in programs:
            raise ValueError(f"genesis needs a program id for {venue}")
        value = programs[venue]
        ids.append(value if isinstance(value, Pubkey) else Pubkey.from_string(value))
    return _build(ids[0], ids[1])


@functools.lru_cache(maxsize=8)
def _build(raydium_cpmm: Pubkey, meteora_dlmm: Pubkey) -> Genesis:
    return Genesis({"raydium_cpmm": raydium_cpmm, "meteora_dlmm": meteora_dlmm})


def render(doc: dict[str, Any]) -> str:
    """The markets file's exact text (stable key order, two-space indent, final newline)."""
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simchain.genesis",
        description="Write the markets file of the simulated chain's genesis.",
    )
    parser.add_argument(
        "--write", metavar="PATH", required=True, help="markets file to write, e.g. markets/sim.json"
    )
    parser.add_argument("--raydium-cpmm", metavar="PROGRAM_ID", help="Raydium CPMM program id")
    parser.add_argument("--meteora-dlmm", metavar="PROGRAM_ID", help="Meteora DLMM program id")
    args = parser.parse_args(argv)
    path = Path(args.write)
    programs: dict[str, str] = {}
    if path.is_file():
        programs.update(json.loads(path.read_text()).get("programs", {}))
    if args.raydium_cpmm:
        programs["raydium_cpmm"] = args.raydium_cpmm
    if args.meteora_dlmm:
        programs["meteora_dlmm"] = args.meteora_dlmm
    missing = [v for v in ("raydium_cpmm", "meteora_dlmm") if v not in programs]
    if missing:
        print(
            f"program id(s) needed for {', '.join(missing)}: pass --raydium-cpmm/--meteora-dlmm",
            file=sys.stderr,
        )
        return 2
    genesis = build_genesis(programs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(genesis.markets_doc()))
    print(f"wrote {path}: {len(genesis.tokens)} tokens, {len(genesis.pools)} pools")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
