"""`make market` (`python -m executor_svc.market`): a market to trade on a cluster where the wallet
holds only SOL (devnet after an airdrop, a local validator, any RPC).

Through the programs' own instructions, signed by the wallet:

1. a test token (SPL Token mint, the wallet its mint authority) and its supply in the wallet;
2. a Raydium CPMM pool TOKEN/SOL: `initialize` with an `AmmConfig` found on chain (one that allows
   pool creation; lowest trade fee first), the wallet's wSOL and tokens as the opening reserves;
3. a Meteora DLMM pair TOKEN/SOL: `initialize_lb_pair` with a `PresetParameter` found on chain, its
   two bin arrays around the opening price, a position, and liquidity on both sides of the active
   bin (`add_liquidity_by_weight`);
4. the markets file: the input file's programs and tokens, the new token, and both pools.

Program ids come from the markets file; the CPMM `create_pool_fee` receiver is a constant of each
CPMM deployment (given per program id below, or `--create-pool-fee-account`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import RENT
from solders.transaction import VersionedTransaction

from common.chain import AccountData, ChainClient, ChainError, DataSize, Memcmp, ProgramAccount
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import NATIVE_MINT, TOKEN_PROGRAM_ID
from executor_svc.builder import associated_token_address, create_ata_idempotent_ix, wrap_instructions

COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MINT_SIZE = 82
# The wSOL token account each CPMM deployment sends its pool-creation fee to (a program constant).
CREATE_POOL_FEE_RECEIVERS = cpmm.CREATE_POOL_FEE_RECEIVERS
DISC_PRESET_PARAMETER = bytes([242, 62, 244, 34, 181, 112, 58, 170])
_PRESET = struct.Struct("<HHHHHIIiiH")
POSITION_HALF_WIDTH = 10  # the position covers active-10 … active+10 (21 bins, within one position)


class MarketError(Exception):
    """The market could not be made; the message says which step and why."""


def anchor_ix_data(name: str, args: bytes = b"") -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8] + args


def rent_exempt(size: int) -> int:
    """The rent-exempt minimum at the default rent (3,480 lamports per byte-year, 2 years)."""
    return (128 + size) * 3480 * 2


class MarketChain(Protocol):
    """What making a market needs from a node."""

    async def get_multiple_accounts(
        self, keys: Sequence[Pubkey], max_age_s: float | None = None
    ) -> tuple[int, list[AccountData | None]]: ...

    async def get_program_accounts(
        self, program_id: Pubkey, filters: Sequence[Memcmp | DataSize]
    ) -> list[ProgramAccount]: ...

    async def latest_blockhash(self) -> tuple[Hash, int]: ...

    async def send_and_confirm(self, tx: VersionedTransaction, what: str) -> None: ...


class RpcMarketChain:
    """MarketChain over a JSON-RPC node (common.chain.ChainClient)."""

    def __init__(self, client: ChainClient, timeout_s: float = 90.0) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def get_multiple_accounts(
        self, keys: Sequence[Pubkey], max_age_s: float | None = None
    ) -> tuple[int, list[AccountData | None]]:
        self.client.forget_accounts(keys)
        return await self.client.get_multiple_accounts(keys, max_age_s=0)

    async def get_program_accounts(
        self, program_id: Pubkey, filters: Sequence[Memcmp | DataSize]
    ) -> list[ProgramAccount]:
        return await self.client.get_program_accounts(program_id, filters)

    async def latest_blockhash(self) -> tuple[Hash, int]:
        self.client.forget_blockhash()
        return await self.client.latest_blockhash()

    async def send_and_confirm(self, tx: VersionedTransaction, what: str) -> None:
        signature = await self.client.send_raw_transaction(bytes(tx), skip_preflight=False)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            status = await self.client.signature_status(signature)
            if status is not None and status.err is not None:
                raise MarketError(f"{what}: transaction {signature} failed: {status.err}")
            if status is not None and status.reached(self.client.commitment):
                return
            await asyncio.sleep(0.5)
        raise MarketError(f"{what}: transaction {signature} not confirmed within {self.timeout_s:.0f} s")


# -- instructions ---------------------------------------------------------------------------------


def compute_limit_ix(units: int) -> Instruction:
    return Instruction(COMPUTE_BUDGET_PROGRAM_ID, bytes([2]) + units.to_bytes(4, "little"), [])


def initialize_mint2_ix(mint: Pubkey, decimals: int, authority: Pubkey) -> Instruction:
    data = bytes([20, decimals]) + bytes(authority) + bytes([0])  # no freeze authority
    return Instruction(TOKEN_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def mint_to_ix(mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([7]) + amount.to_bytes(8, "little"),
        [
            AccountMeta(mint, False, True),
            AccountMeta(destination, False, True),
            AccountMeta(authority, True, False),
        ],
    )


@dataclass(frozen=True)
class Preset:
    address: Pubkey
    bin_step: int
    base_factor: int


def decode_preset(address: Pubkey, data: bytes) -> Preset:
    if data[:8] != DISC_PRESET_PARAMETER or len(data) < 8 + _PRESET.size:
        raise MarketError(f"{address} is not a DLMM PresetParameter")
    fields = _PRESET.unpack_from(data, 8)
    return Preset(address, fields[0], fields[1])


def lb_pair_address(
    program: Pubkey, mint_x: Pubkey, mint_y: Pubkey, bin_step: int, base_factor: int
) -> Pubkey:
    lo, hi = sorted((mint_x, mint_y), key=bytes)
    seeds = [bytes(lo), bytes(hi), bin_step.to_bytes(2, "little"), base_factor.to_bytes(2, "little")]
    return Pubkey.find_program_address(seeds, program)[0]


def reserve_address(program: Pubkey, lb_pair: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(lb_pair), bytes(mint)], program)[0]


def active_id_for(price_per_lamport: float, bin_step: int) -> int:
    """The bin whose price (Y base units per X base unit) is nearest `price_per_lamport`."""
    return round(math.log(price_per_lamport) / math.log1p(bin_step / 10_000))


def dlmm_initialize_lb_pair_ix(
    program: Pubkey, funder: Pubkey, preset: Preset, mint_x: Pubkey, mint_y: Pubkey, active_id: int
) -> tuple[Instruction, Pubkey]:
    lb_pair = lb_pair_address(program, mint_x, mint_y, preset.bin_step, preset.base_factor)
    accounts = [
        AccountMeta(lb_pair, False, True),
        AccountMeta(program, False, False),  # no bin array bitmap extension
        AccountMeta(mint_x, False, False),
        AccountMeta(mint_y, False, False),
        AccountMeta(reserve_address(program, lb_pair, mint_x), False, True),
        AccountMeta(reserve_address(program, lb_pair, mint_y), False, True),
        AccountMeta(dlmm.oracle_pda(program, lb_pair), False, True),
        AccountMeta(preset.address, False, False),
        AccountMeta(funder, True, True),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(RENT, False, False),
        AccountMeta(dlmm.event_authority_pda(program), False, False),
        AccountMeta(program, False, False),
    ]
    data = anchor_ix_data("initialize_lb_pair", struct.pack("<iH", active_id, preset.bin_step))
    return Instruction(program, data, accounts), lb_pair


def dlmm_initialize_bin_array_ix(program: Pubkey, funder: Pubkey, lb_pair: Pubkey, index: int) -> Instruction:
    accounts = [
        AccountMeta(lb_pair, False, False),
        AccountMeta(dlmm.bin_array_pda(program, lb_pair, index), False, True),
        AccountMeta(funder, True, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    return Instruction(program, anchor_ix_data("initialize_bin_array", struct.pack("<q", index)), accounts)


def dlmm_initialize_position_ix(
    program: Pubkey, payer: Pubkey, position: Pubkey, lb_pair: Pubkey, lower_bin_id: int, width: int
) -> Instruction:
    accounts = [
        AccountMeta(payer, True, True),
        AccountMeta(position, True, True),
        AccountMeta(lb_pair, False, False),
        AccountMeta(payer, True, False),  # owner
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(RENT, False, False),
        AccountMeta(dlmm.event_authority_pda(program), False, False),
        AccountMeta(program, False, False),
    ]
    data = anchor_ix_data("initialize_position", struct.pack("<ii", lower_bin_id, width))
    return Instruction(program, data, accounts)


def dlmm_add_liquidity_by_weight_ix(
    program: Pubkey,
    sender: Pubkey,
    position: Pubkey,
    lb_pair: Pubkey,
    mint_x: Pubkey,
    mint_y: Pubkey,
    amount_x: int,
    amount_y: int,
    active_id: int,
    bins: Sequence[tuple[int, int]],
) -> Instruction:
    """`add_liquidity_by_weight`: X goes to the bins at and above the active one, Y at and below,
    in proportion to each bin's weight."""
    lower = min(b for b, _ in bins)
    upper = max(b for b, _ in bins)
    accounts = [
        AccountMeta(position, False, True),
        AccountMeta(lb_pair, False, True),
        AccountMeta(program, False, False),  # no bin array bitmap extension
        AccountMeta(associated_token_address(sender, mint_x, TOKEN_PROGRAM_ID), False, True),
        AccountMeta(associated_token_address(sender, mint_y, TOKEN_PROGRAM_ID), False, True),
        AccountMeta(reserve_address(program, lb_pair, mint_x), False, True),
        AccountMeta(reserve_address(program, lb_pair, mint_y), False, True),
        AccountMeta(mint_x, False, False),
        AccountMeta(mint_y, False, False),
        AccountMeta(dlmm.bin_array_pda(program, lb_pair, dlmm.bin_array_index(lower)), False, True),
        AccountMeta(dlmm.bin_array_pda(program, lb_pair, dlmm.bin_array_index(upper)), False, True),
        AccountMeta(sender, True, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
        AccountMeta(dlmm.event_authority_pda(program), False, False),
        AccountMeta(program, False, False),
    ]
    args = struct.pack("<QQiiI", amount_x, amount_y, active_id, 3, len(bins))
    args += b"".join(struct.pack("<iH", b, w) for b, w in bins)
    return Instruction(program, anchor_ix_data("add_liquidity_by_weight", args), accounts)


def position_range(active_id: int) -> tuple[int, int]:
    """Bins of the opening position: POSITION_HALF_WIDTH around the active bin, stretched to the
    nearest edge of its bin array so that the lowest and highest bins lie in two different arrays
    (`add_liquidity_by_weight` borrows its lower and upper bin arrays mutably, so one account
    given for both fails). At most 2 × POSITION_HALF_WIDTH + 36 bins: within one position (70)."""
    start = dlmm.bin_array_index(active_id) * dlmm.MAX_BIN_PER_ARRAY
    end = start + dlmm.MAX_BIN_PER_ARRAY - 1
    lower, upper = active_id - POSITION_HALF_WIDTH, active_id + POSITION_HALF_WIDTH
    if dlmm.bin_array_index(lower) != dlmm.bin_array_index(upper):
        return lower, upper
    if active_id - start <= end - active_id:
        return start - 1, upper
    return lower, end + 1


# -- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketSpec:
    symbol: str = "TEST"
    decimals: int = 6
    price: float = 100.0  # TEST per SOL at opening, on both venues
    sol_per_pool: int = 500_000_000  # lamports of SOL each pool opens with
    create_pool_fee_account: Pubkey | None = None


@dataclass(frozen=True)
class MadeMarket:
    mint: Pubkey
    cpmm_pool: Pubkey
    dlmm_pair: Pubkey


class MarketMaker:
    def __init__(
        self, chain: MarketChain, payer: Keypair, programs: dict[str, Pubkey], say: Any = print
    ) -> None:
        self.chain = chain
        self.payer = payer
        self.programs = programs
        self.say = say

    async def send(self, what: str, ixs: list[Instruction], extra_signers: Sequence[Keypair] = ()) -> None:
        blockhash, _ = await self.chain.latest_blockhash()
        message = MessageV0.try_compile(self.payer.pubkey(), ixs, [], blockhash)
        tx = VersionedTransaction(message, [self.payer, *extra_signers])
        await self.chain.send_and_confirm(tx, what)
        self.say(f"{what}: done")

    async def make(self, spec: MarketSpec) -> MadeMarket:
        wallet = self.payer.pubkey()
        token_per_pool = int(spec.sol_per_pool / 10**9 * spec.price * 10**spec.decimals)
        if token_per_pool <= 0:
            raise MarketError("price: too small for the token's decimals")
        mint_kp = Keypair()
        mint = mint_kp.pubkey()
        token_ata = associated_token_address(wallet, mint, TOKEN_PROGRAM_ID)
        await self.send(
            f"create the token {spec.symbol} ({mint})",
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=wallet,
                        to_pubkey=mint,
                        lamports=rent_exempt(MINT_SIZE),
                        space=MINT_SIZE,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                initialize_mint2_ix(mint, spec.decimals, wallet),
                create_ata_idempotent_ix(wallet, wallet, mint, TOKEN_PROGRAM_ID),
                mint_to_ix(mint, token_ata, wallet, 4 * token_per_pool),
            ],
            [mint_kp],
        )
        await self.send("wrap SOL for both pools", wrap_instructions(wallet, 2 * spec.sol_per_pool))
        cpmm_pool = await self.make_cpmm(spec, mint, token_per_pool)
        dlmm_pair = await self.make_dlmm(spec, mint, token_per_pool)
        return MadeMarket(mint, cpmm_pool, dlmm_pair)

    async def make_cpmm(self, spec: MarketSpec, mint: Pubkey, token_amount: int) -> Pubkey:
        program = self.programs["raydium_cpmm"]
        found = await self.chain.get_program_accounts(
            program, [DataSize(cpmm.AMM_CONFIG_SIZE), Memcmp(0, cpmm.DISC_AMM_CONFIG)]
        )
        configs = []
        for item in found:
            config = cpmm.decode_amm_config(item.pubkey, item.account.owner, item.account.data, program)
            if not config.disable_create_pool:
                configs.append((config.trade_fee_rate, config.index, item.pubkey, config))
        if not configs:
            raise MarketError(f"raydium_cpmm: no AmmConfig of {program} allows creating a pool")
        _, index, config_address, config = min(configs, key=lambda c: (c[0], c[1]))
        receiver = spec.create_pool_fee_account or Pubkey.from_string(
            CREATE_POOL_FEE_RECEIVERS.get(str(program), "")
            or _fail(
                f"raydium_cpmm: the create_pool_fee account of {program} is not known; "
                "pass --create-pool-fee-account"
            )
        )
        ix, pool = cpmm.initialize_ix(
            program,
            self.payer.pubkey(),
            config_address,
            receiver,
            NATIVE_MINT,
            mint,
            spec.sol_per_pool,
            token_amount,
        )
        self.say(
            f"raydium_cpmm: AmmConfig {config_address} (index {index}, trade fee {config.trade_fee_rate}/1e6)"
        )
        await self.send(f"raydium_cpmm: initialize pool {pool.pool_state}", [compute_limit_ix(400_000), ix])
        return pool.pool_state

    async def make_dlmm(self, spec: MarketSpec, mint: Pubkey, token_amount: int) -> Pubkey:
        program = self.programs["meteora_dlmm"]
        found = await self.chain.get_program_accounts(program, [Memcmp(0, DISC_PRESET_PARAMETER)])
        presets = sorted(
            (decode_preset(item.pubkey, item.account.data) for item in found),
            key=lambda p: (abs(p.bin_step - 25), p.base_factor),
        )
        if not presets:
            raise MarketError(f"meteora_dlmm: no PresetParameter of {program} found on chain")
        preset = presets[0]
        wallet = self.payer.pubkey()
        mint_x, mint_y = mint, NATIVE_MINT  # price: lamports per token base unit
        price_per_lamport = 10**9 / (spec.price * 10**spec.decimals)
        active_id = active_id_for(price_per_lamport, preset.bin_step)
        init_ix, lb_pair = dlmm_initialize_lb_pair_ix(program, wallet, preset, mint_x, mint_y, active_id)
        self.say(
            f"meteora_dlmm: PresetParameter {preset.address} (bin step {preset.bin_step}), "
            f"active bin {active_id}"
        )
        await self.send(f"meteora_dlmm: initialize pair {lb_pair}", [init_ix])
        lower, upper = position_range(active_id)
        indexes = sorted({dlmm.bin_array_index(lower), dlmm.bin_array_index(upper)})
        await self.send(
            f"meteora_dlmm: bin arrays {indexes}",
            [compute_limit_ix(400_000 * len(indexes))]
            + [dlmm_initialize_bin_array_ix(program, wallet, lb_pair, i) for i in indexes],
        )
        position = Keypair()
        bins = [(b, 1000) for b in range(lower, upper + 1)]
        await self.send(
            f"meteora_dlmm: position {position.pubkey()} and liquidity in bins {lower}…{upper}",
            [
                compute_limit_ix(1_000_000),
                dlmm_initialize_position_ix(
                    program, wallet, position.pubkey(), lb_pair, lower, upper - lower + 1
                ),
                dlmm_add_liquidity_by_weight_ix(
                    program,
                    wallet,
                    position.pubkey(),
                    lb_pair,
                    mint_x,
                    mint_y,
                    token_amount,
                    spec.sol_per_pool,
                    active_id,
                    bins,
                ),  # fmt: skip
            ],
            [position],
        )
        return lb_pair


def _fail(message: str) -> str:
    raise MarketError(message)


def markets_document(base: dict[str, Any], spec: MarketSpec, made: MadeMarket) -> dict[str, Any]:
    """The input markets file with the new token and both pools added."""
    doc: dict[str, Any] = json.loads(json.dumps(base))
    tokens = [t for t in doc.get("tokens", []) if t.get("symbol") != spec.symbol]
    if not any(t.get("mint") == str(NATIVE_MINT) for t in tokens):
        tokens.insert(0, {"symbol": "SOL", "mint": str(NATIVE_MINT), "decimals": 9})
    tokens.append({"symbol": spec.symbol, "mint": str(made.mint), "decimals": spec.decimals})
    doc["tokens"] = tokens
    doc["pools"] = [
        *doc.get("pools", []),
        {"venue": "raydium_cpmm", "address": str(made.cpmm_pool)},
        {"venue": "meteora_dlmm", "address": str(made.dlmm_pair)},
    ]
    return doc


# -- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m executor_svc.market", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--markets", type=Path, help="input markets file (programs, tokens); default MARKETS_FILE")
    p.add_argument("--write", type=Path, help="markets file to write; default MARKETS_FILE")
    p.add_argument("--symbol", default="TEST")
    p.add_argument("--decimals", type=int, default=6)
    p.add_argument("--price", type=float, default=100.0, help="tokens per SOL at opening (default 100)")
    p.add_argument("--sol", type=float, default=0.5, help="SOL each pool opens with (default 0.5)")
    p.add_argument("--create-pool-fee-account", type=Pubkey.from_string, default=None)
    return p


async def _run(args: argparse.Namespace) -> int:
    from common.settings import load_settings
    from executor_svc.wallet import load_key_settings, load_keypair_file

    settings = load_settings()
    _ = settings.rpc_url  # a real cluster names its node: stop here when it does not
    keys = load_key_settings()
    if not keys.keypair_path:
        raise MarketError("KEYPAIR_PATH: the wallet's keypair file is required (it pays and signs)")
    payer = load_keypair_file(Path(keys.keypair_path).expanduser())
    source: Path = args.markets or settings.markets_path
    target: Path = (
        args.write or (Path(settings.markets_file) if settings.markets_file else None) or _fail_path()
    )
    base: dict[str, Any] = (
        json.loads(source.read_text()) if source.is_file() else {"cluster": settings.chain, "programs": {}}
    )
    programs = {
        venue: Pubkey.from_string(base["programs"][venue]) for venue in ("raydium_cpmm", "meteora_dlmm")
    }
    spec = MarketSpec(
        symbol=args.symbol,
        decimals=args.decimals,
        price=args.price,
        sol_per_pool=int(args.sol * 10**9),
        create_pool_fee_account=args.create_pool_fee_account,
    )
    async with ChainClient.from_settings(settings, timeout_s=max(settings.rpc_timeout_s, 60.0)) as client:
        made = await MarketMaker(RpcMarketChain(client), payer, programs).make(spec)
    target.write_text(json.dumps(markets_document(base, spec, made), indent=2) + "\n")
    print(
        f"wrote {target}: {spec.symbol} {made.mint}, "
        f"raydium_cpmm {made.cpmm_pool}, meteora_dlmm {made.dlmm_pair}"
    )
    return 0


def _fail_path() -> Path:
    raise MarketError("MARKETS_FILE: where to write the market is required (or --write)")


def main(argv: list[str] | None = None) -> int:
    from common.settings import ConfigError

    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (MarketError, ConfigError, KeyError, OSError, ValueError) as exc:
        text = exc.code if isinstance(exc, ConfigError) else f"market: {exc}"
        print(text, file=sys.stderr)
    except ChainError as exc:
        print(f"market: RPC failed: {exc.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
