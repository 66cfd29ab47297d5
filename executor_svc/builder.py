"""Building, simulating and signing the swap transaction of one attempt.

One v0 transaction per attempt, its instructions in this order:

1. ComputeBudget `SetComputeUnitLimit` (simulated units x 1.2, or a per-venue default) and
   `SetComputeUnitPrice` (the PRIORITY_FEE_PERCENTILE of recent prioritization fees on the
   pools' writable accounts, capped by PRIORITY_FEE_MAX);
2. the input side: SOL is wrapped (create the wSOL associated token account idempotently,
   transfer, SyncNative), any other token's associated account is created idempotently;
3. the output's associated token account, created idempotently (wSOL for SOL);
4. one swap per leg: Raydium CPMM `swap_base_input` or Meteora DLMM `swap2`, each with its leg's
   `min_amount_out`. A DLMM swap carries the bin arrays on BOTH sides of the active bin it was
   built from (DLMM_BIN_ARRAYS in the swap's direction, DLMM_BIN_ARRAYS_BEHIND on the other), in
   the order its walk visits them, and the pair's bitmap extension whenever the pair has one: if
   other swaps move the pool before ours lands, the program still finds every array it walks
   (instead of failing 3005 AccountNotEnoughKeys), so the swap lands or fails only by its min-out,
   which is a retryable "price moved" (a fresh quote, the next attempt).
   An exact-out leg is CPMM `swap_base_output(max_amount_in, amount_out)` or DLMM
   `swap_exact_out2(max_in_amount, out_amount)`: the program delivers exactly the amount out or
   fails, and never takes more than the leg's max-in (SOL in: the legs' max-ins are wrapped);
5. if SOL is in or out, the wSOL account is closed back into the wallet (unwrap);
6. a Memo `oe:<order_id>:<attempt>`.

Pool accounts are read through `ChainClient.get_multiple_accounts` (cached per slot, shared by all
orders) and decoded once per version of their bytes. The blockhash comes from the chain client's
per-slot cache. The transaction is simulated before it is signed for good: a program error
(e.g. slippage) fails the attempt here and nothing is sent.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from common.chain import AccountData, ChainClient, ChainError
from common.dex import meteora_dlmm, raydium_cpmm
from common.dex.errors import LayoutError, QuoteError
from common.dex.spl_token import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
)
from common.dex.spl_token import associated_token_address as _derive_ata
from common.markets import Markets
from common.settings import Settings
from executor_svc.wallet import Wallet

log = logging.getLogger(__name__)

MEMO_PROGRAM_ID: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
PACKET_DATA_SIZE: Final = 1232
MAX_COMPUTE_UNITS: Final = 1_400_000
CU_MARGIN_NUM, CU_MARGIN_DEN = 6, 5  # x 1.2
# Compute units a leg is given when simulation reports none, and what wrapping, account creation
# and the memo cost on top (generous: an unused limit costs nothing but the priority fee on it).
DEFAULT_LEG_UNITS: Final = {"raydium_cpmm": 150_000, "meteora_dlmm": 300_000}
DEFAULT_OVERHEAD_UNITS: Final = 80_000
DLMM_BIN_ARRAYS: Final = 3  # in the swap's direction, from the active bin's array
DLMM_BIN_ARRAYS_BEHIND: Final = 2  # on the other side: the pool may move toward us before we land

_TOKEN_SYNC_NATIVE: Final = bytes([17])
_TOKEN_CLOSE_ACCOUNT: Final = bytes([9])
_ATA_CREATE_IDEMPOTENT: Final = bytes([1])
# Slippage errors of each venue's program.
SLIPPAGE_CODES: Final = {
    "raydium_cpmm": raydium_cpmm.SLIPPAGE_ERROR_CODES,
    "meteora_dlmm": meteora_dlmm.SLIPPAGE_ERROR_CODES,
}


# How a failure that a fresh quote may cure begins (the program's slippage check, or a DLMM pool
# that moved beyond the swap's bin arrays): the attempt is retryable, the worker quotes again.
PRICE_MOVED: Final = "price moved"


class BuildFailed(Exception):
    """The attempt cannot be built or would fail on chain; nothing was sent."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# ------------------------------------------------------------------------------------------------
# plans


@dataclass(frozen=True, slots=True)
class LegPlan:
    venue: str
    pool: Pubkey
    amount_in: int  # exact-out: the quoted input
    min_amount_out: int  # exact-out: the output delivered exactly
    exact_out: bool = False  # CPMM swap_base_output / DLMM swap_exact_out2
    max_amount_in: int = 0  # exact-out: the input bound sent on chain

    @property
    def ix_amounts(self) -> tuple[int, int]:
        """The swap instruction's two amounts: (amount_in, minimum_amount_out) for an exact-in
        swap, (max_amount_in, amount_out) for an exact-out one."""
        if self.exact_out:
            return self.max_amount_in, self.min_amount_out
        return self.amount_in, self.min_amount_out


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """A validated ExecuteRequest."""

    order_id: str
    attempt: int
    input_mint: Pubkey
    output_mint: Pubkey
    amount_in: int  # 0 for an exact-out order
    legs: tuple[LegPlan, ...]
    amount_out: int = 0  # exact-out: the output to deliver exactly
    urgent: bool = False  # a sniper order: SNIPER_PRIORITY_FEE_PERCENTILE

    @property
    def max_spend(self) -> int:
        """The most the swaps may take from the wallet: the amount in, or (exact-out) the sum of
        the legs' max_amount_in (what is wrapped when the input is SOL; the unused rest of the wSOL
        returns to the wallet when the account is closed)."""
        if self.amount_out:
            return sum(leg.max_amount_in for leg in self.legs)
        return self.amount_in

    @property
    def dex(self) -> str:
        return self.legs[0].venue if len(self.legs) == 1 else "split"

    @property
    def memo(self) -> bytes:
        return f"oe:{self.order_id}:{self.attempt}".encode()


@dataclass(frozen=True, slots=True)
class WalletAccounts:
    """The wallet's token accounts an order touches."""

    input_program: Pubkey
    output_program: Pubkey
    input_account: Pubkey  # the wSOL account when the input is SOL
    output_account: Pubkey  # the wSOL account when the output is SOL

    @property
    def all(self) -> tuple[Pubkey, ...]:
        return (self.input_account, self.output_account)


@dataclass(frozen=True, slots=True)
class BuiltTx:
    tx: VersionedTransaction
    raw: bytes
    signature: Signature
    blockhash: Hash
    last_valid_block_height: int
    compute_unit_limit: int
    compute_unit_price: int
    roles: dict[int, str]  # instruction index → what it does ("raydium_cpmm swap", "wrap SOL", …)
    accounts: WalletAccounts


@dataclass(frozen=True, slots=True)
class Draft:
    """A transaction ready to sign: its final message (compute budget from the simulation)."""

    message: MessageV0
    blockhash: Hash
    last_valid_block_height: int
    compute_unit_limit: int
    compute_unit_price: int
    roles: dict[int, str]
    accounts: WalletAccounts


@dataclass(slots=True)
class _Leg:
    """A leg with everything read from the chain that its instruction needs."""

    plan: LegPlan
    input_program: Pubkey
    output_program: Pubkey
    writable: tuple[Pubkey, ...]
    # (user input account, user output account, how many DLMM bin arrays) -> the swap instruction
    make_ix: Callable[[Pubkey, Pubkey, int], Instruction] = field(repr=False)


@functools.lru_cache(maxsize=16384)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    """The associated token account address, memoized (a PDA search costs ~20 us)."""
    return _derive_ata(owner, mint, token_program)


# ------------------------------------------------------------------------------------------------
# small instructions of the runtime's own programs (their ids are protocol constants)


def create_ata_idempotent_ix(
    payer: Pubkey, owner: Pubkey, mint: Pubkey, token_program: Pubkey
) -> Instruction:
    ata = associated_token_address(owner, mint, token_program)
    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM_ID,
        _ATA_CREATE_IDEMPOTENT,
        [
            AccountMeta(payer, True, True),
            AccountMeta(ata, False, True),
            AccountMeta(owner, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(token_program, False, False),
        ],
    )


def sync_native_ix(account: Pubkey) -> Instruction:
    return Instruction(TOKEN_PROGRAM_ID, _TOKEN_SYNC_NATIVE, [AccountMeta(account, False, True)])


def close_account_ix(account: Pubkey, destination: Pubkey, owner: Pubkey) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        _TOKEN_CLOSE_ACCOUNT,
        [
            AccountMeta(account, False, True),
            AccountMeta(destination, False, True),
            AccountMeta(owner, True, False),
        ],
    )


def memo_ix(text: bytes) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text, [])


def wrap_instructions(wallet: Pubkey, amount: int) -> list[Instruction]:
    """Create the wallet's wSOL account (idempotent), move `amount` lamports in, SyncNative."""
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    return [
        create_ata_idempotent_ix(wallet, wallet, NATIVE_MINT, TOKEN_PROGRAM_ID),
        transfer(TransferParams(from_pubkey=wallet, to_pubkey=wsol, lamports=amount)),
        sync_native_ix(wsol),
    ]


def unwrap_instruction(wallet: Pubkey) -> Instruction:
    """Close the wallet's wSOL account: its lamports (rent and wSOL) go back to the wallet."""
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    return close_account_ix(wsol, wallet, wallet)


def compose_instructions(
    wallet: Pubkey,
    plan: OrderPlan,
    accounts: WalletAccounts,
    swaps: Sequence[tuple[str, Instruction]],
    cu_limit: int,
    cu_price: int,
    create_input_account: bool = True,
    memo: bool = True,
) -> tuple[list[Instruction], dict[int, str]]:
    """The attempt's instructions in order, and what each one does (by index)."""
    ixs: list[Instruction] = [set_compute_unit_limit(cu_limit), set_compute_unit_price(cu_price)]
    roles = {0: "compute budget", 1: "compute budget"}

    def add(ix: Instruction, role: str) -> None:
        roles[len(ixs)] = role
        ixs.append(ix)

    sol_in = plan.input_mint == NATIVE_MINT
    sol_out = plan.output_mint == NATIVE_MINT
    if sol_in:
        for ix in wrap_instructions(wallet, plan.max_spend):
            add(ix, "wrap SOL")
    elif create_input_account:
        add(
            create_ata_idempotent_ix(wallet, wallet, plan.input_mint, accounts.input_program),
            "create the input token account",
        )
    add(
        create_ata_idempotent_ix(wallet, wallet, plan.output_mint, accounts.output_program),
        "create the output token account",
    )
    for venue, ix in swaps:
        add(ix, f"{venue} swap")
    if sol_in or sol_out:
        add(unwrap_instruction(wallet), "unwrap SOL")
    if memo:
        add(memo_ix(plan.memo), "memo")
    return ixs, roles


# ------------------------------------------------------------------------------------------------
# program errors


# Each venue's program errors by code, from the DEX modules' public tables.
_ERROR_NAME: Final[dict[str, Callable[[int], str | None]]] = {
    "raydium_cpmm": raydium_cpmm.error_name,
    "meteora_dlmm": meteora_dlmm.error_name,
}
_TOKEN_ERRORS: Final = {
    0: "NotRentExempt",
    1: "InsufficientFunds",
    3: "MintMismatch",
    4: "OwnerMismatch",
    17: "AccountFrozen",
}


def describe_transaction_error(err: Any, roles: dict[int, str]) -> tuple[str, bool]:
    """(reason, retryable) for a TransactionError returned by simulation or by a landed
    transaction."""
    if err == "BlockhashNotFound":
        return "the RPC node does not know the blockhash yet", True
    if err in ("InsufficientFundsForFee", "AccountNotFound", "InvalidAccountForFee"):
        return f"the wallet cannot pay the transaction fee ({err})", False
    if err == "InsufficientFundsForRent":
        return "the wallet would fall below rent exemption (InsufficientFundsForRent)", False
    if isinstance(err, dict) and "InstructionError" in err:
        try:
            index, ierr = err["InstructionError"]
        except (TypeError, ValueError):
            return f"transaction failed: {str(err)[:200]}", False
        role = roles.get(index, f"instruction {index}")
        venue: str | None = role.removesuffix(" swap") if role.endswith(" swap") else None
        if isinstance(ierr, dict) and "Custom" in ierr:
            code = ierr["Custom"]
            if venue is not None:
                lookup = _ERROR_NAME.get(venue)
                program_error = lookup(code) if lookup is not None and isinstance(code, int) else None
                if code in SLIPPAGE_CODES.get(venue, ()):
                    # the pool moved past the order's bound since its quote: a fresh quote may
                    # still fill it, so the next attempt routes again
                    name = program_error or "slippage"
                    return f"{PRICE_MOVED}: slippage exceeded on {venue} (program error {code} {name})", True
                if venue == "meteora_dlmm" and code == meteora_dlmm.ACCOUNT_NOT_ENOUGH_KEYS:
                    # the pool moved beyond every bin array the swap carried: build from fresh state
                    return (
                        f"{PRICE_MOVED}: meteora_dlmm needs a bin array the swap did not carry "
                        f"(program error {code} {program_error})",
                        True,
                    )
                if venue == "meteora_dlmm" and code == meteora_dlmm.BITMAP_EXTENSION_NOT_PROVIDED:
                    # the pair's liquidity on that side ran out since the quote (other swaps took
                    # it): the next attempt routes again, to another pool or to no route at all
                    return (
                        f"{PRICE_MOVED}: meteora_dlmm ran out of liquidity for the swap "
                        f"(program error {code} {program_error})",
                        True,
                    )
                if program_error is not None:
                    return f"{venue} rejected the swap (program error {code} {program_error})", False
                if code in _TOKEN_ERRORS:
                    return (
                        f"{venue} swap failed in the token program (error {code} {_TOKEN_ERRORS[code]})",
                        False,
                    )
                return f"{venue} rejected the swap (program error {code})", False
            token_error = _TOKEN_ERRORS.get(code)
            suffix = f" {token_error}" if token_error else ""
            return f"{role} failed (program error {code}{suffix})", False
        return f"{role} failed ({ierr})", False
    return f"transaction rejected ({str(err)[:200]})", False


def dlmm_arrays_by_priority(forward: Sequence[int], behind: Sequence[int]) -> list[int]:
    """A DLMM swap's bin arrays in the order they are kept when the transaction must shrink: the
    active bin's and the next in the swap's direction, then alternately the nearest left behind
    and the next ahead (a swap lists the kept ones in its walk's order, meteora_dlmm.swap_order)."""
    kept = list(forward[:2])
    ahead = forward[2:]
    for i in range(max(len(ahead), len(behind))):
        kept += [*behind[i : i + 1], *ahead[i : i + 1]]
    return kept


def _unsigned(message: MessageV0) -> VersionedTransaction:
    """The message with placeholder signatures: simulation runs without signature verification,
    and the key signs only what is actually sent."""
    return VersionedTransaction.populate(
        message, [Signature.default()] * message.header.num_required_signatures
    )


# ------------------------------------------------------------------------------------------------
# the builder


class TxBuilder:
    def __init__(self, chain: ChainClient, markets: Markets, wallet: Wallet, settings: Settings) -> None:
        self._chain = chain
        self._markets = markets
        self._wallet = wallet
        self._fee_cap = settings.priority_fee_max_micro_lamports
        self._fee_percentile = settings.priority_fee_percentile
        self._urgent_fee_percentile = settings.sniper_priority_fee_percentile
        self._programs = {venue: markets.program_id(venue) for venue in markets.programs}
        # address → (the bytes decoded, the decoded value): decoding once per version of an account
        self._decoded: dict[Pubkey, tuple[bytes, Any]] = {}

    @property
    def chain(self) -> ChainClient:
        """The chain client whose per-slot account cache the build reads (shared with the checks)."""
        return self._chain

    # -- reading pools ----------------------------------------------------------------------------

    def _decode(self, address: Pubkey, account: AccountData, decoder: Any, program: Pubkey) -> Any:
        cached = self._decoded.get(address)
        if cached is not None and cached[0] is account.data:
            return cached[1]
        value = decoder(address, account.owner, account.data, program)
        if len(self._decoded) > 10_000:
            self._decoded.clear()
        self._decoded[address] = (account.data, value)
        return value

    async def _legs(self, plan: OrderPlan) -> list[_Leg]:
        keys: list[Pubkey] = []
        for leg in plan.legs:
            keys.append(leg.pool)
            if leg.venue == "meteora_dlmm":
                keys.append(meteora_dlmm.bin_array_bitmap_extension_pda(self._programs[leg.venue], leg.pool))
        _, accounts = await self._chain.get_multiple_accounts(keys)
        found = dict(zip(keys, accounts, strict=True))
        legs: list[_Leg] = []
        for leg in plan.legs:
            account = found[leg.pool]
            if account is None:
                raise BuildFailed(f"pool {leg.pool} ({leg.venue}) does not exist on chain", False)
            program = self._programs[leg.venue]
            try:
                if leg.venue == "raydium_cpmm":
                    legs.append(self._cpmm_leg(plan, leg, account, program))
                else:
                    ext_key = meteora_dlmm.bin_array_bitmap_extension_pda(program, leg.pool)
                    legs.append(self._dlmm_leg(plan, leg, account, program, ext_key, found[ext_key]))
            except LayoutError as exc:
                raise BuildFailed(
                    f"pool {leg.pool} is not a valid {leg.venue} pool ({exc.reason})", False
                ) from None
        return legs

    def _check_mints(self, plan: OrderPlan, leg: LegPlan, mints: tuple[Pubkey, Pubkey]) -> bool:
        """True when the input is the pool's first mint (token_0 / X)."""
        if (plan.input_mint, plan.output_mint) == mints:
            return True
        if (plan.output_mint, plan.input_mint) == mints:
            return False
        raise BuildFailed(
            f"pool {leg.pool} ({leg.venue}) does not trade {plan.input_mint} for {plan.output_mint}", False
        )

    def _cpmm_leg(self, plan: OrderPlan, leg: LegPlan, account: AccountData, program: Pubkey) -> _Leg:
        pool: raydium_cpmm.PoolState = self._decode(
            leg.pool, account, raydium_cpmm.decode_pool_state, program
        )
        zero_for_one = self._check_mints(plan, leg, (pool.token_0_mint, pool.token_1_mint))
        if zero_for_one:
            in_vault, out_vault = pool.token_0_vault, pool.token_1_vault
            in_prog, out_prog = pool.token_0_program, pool.token_1_program
        else:
            in_vault, out_vault = pool.token_1_vault, pool.token_0_vault
            in_prog, out_prog = pool.token_1_program, pool.token_0_program
        payer = self._wallet.pubkey

        def make(user_in: Pubkey, user_out: Pubkey, bin_arrays: int) -> Instruction:
            swap = raydium_cpmm.swap_base_output_ix if leg.exact_out else raydium_cpmm.swap_base_input_ix
            return swap(
                program,
                payer,
                leg.pool,
                pool.amm_config,
                user_in,
                user_out,
                in_vault,
                out_vault,
                in_prog,
                out_prog,
                plan.input_mint,
                plan.output_mint,
                pool.observation_key,
                *leg.ix_amounts,
            )

        return _Leg(leg, in_prog, out_prog, (leg.pool, in_vault, out_vault), make)

    def _dlmm_leg(
        self,
        plan: OrderPlan,
        leg: LegPlan,
        account: AccountData,
        program: Pubkey,
        ext_key: Pubkey,
        ext_account: AccountData | None,
    ) -> _Leg:
        pair: meteora_dlmm.LbPair = self._decode(leg.pool, account, meteora_dlmm.decode_lb_pair, program)
        swap_for_y = self._check_mints(plan, leg, (pair.token_x_mint, pair.token_y_mint))
        ext = None
        if ext_account is not None:
            ext = self._decode(ext_key, ext_account, meteora_dlmm.decode_bin_array_bitmap_extension, program)
        prog_x = TOKEN_2022_PROGRAM_ID if pair.token_mint_x_program_flag == 1 else TOKEN_PROGRAM_ID
        prog_y = TOKEN_2022_PROGRAM_ID if pair.token_mint_y_program_flag == 1 else TOKEN_PROGRAM_ID
        in_prog, out_prog = (prog_x, prog_y) if swap_for_y else (prog_y, prog_x)
        forward, behind = meteora_dlmm.bin_arrays_around_active(
            pair, swap_for_y, DLMM_BIN_ARRAYS, DLMM_BIN_ARRAYS_BEHIND, ext
        )
        if not forward:
            raise BuildFailed(
                f"pool {leg.pool} (meteora_dlmm) has no liquidity in the swap's direction", False
            )
        kept = dlmm_arrays_by_priority(forward, behind)
        user = self._wallet.pubkey

        def make(user_in: Pubkey, user_out: Pubkey, bin_arrays: int) -> Instruction:
            swap = meteora_dlmm.swap_exact_out2_ix if leg.exact_out else meteora_dlmm.swap2_ix
            return swap(
                program,
                leg.pool,
                ext_key if ext is not None else None,
                pair.reserve_x,
                pair.reserve_y,
                user_in,
                user_out,
                pair.token_x_mint,
                pair.token_y_mint,
                pair.oracle,
                None,
                user,
                prog_x,
                prog_y,
                MEMO_PROGRAM_ID,
                [
                    meteora_dlmm.bin_array_pda(program, leg.pool, i)
                    for i in meteora_dlmm.swap_order(kept[: max(1, bin_arrays)], swap_for_y)
                ],
                *leg.ix_amounts,
            )

        return _Leg(leg, in_prog, out_prog, (leg.pool, pair.reserve_x, pair.reserve_y), make)

    # -- composing --------------------------------------------------------------------------------

    def wallet_accounts(self, plan: OrderPlan, legs: Sequence[_Leg]) -> WalletAccounts:
        in_prog = TOKEN_PROGRAM_ID if plan.input_mint == NATIVE_MINT else legs[0].input_program
        out_prog = TOKEN_PROGRAM_ID if plan.output_mint == NATIVE_MINT else legs[0].output_program
        for leg in legs[1:]:
            if leg.input_program != in_prog and plan.input_mint != NATIVE_MINT:
                raise BuildFailed("the legs disagree on the input token's program", False)
            if leg.output_program != out_prog and plan.output_mint != NATIVE_MINT:
                raise BuildFailed("the legs disagree on the output token's program", False)
        owner = self._wallet.pubkey
        return WalletAccounts(
            in_prog,
            out_prog,
            associated_token_address(owner, plan.input_mint, in_prog),
            associated_token_address(owner, plan.output_mint, out_prog),
        )

    def _compile(
        self,
        plan: OrderPlan,
        legs: Sequence[_Leg],
        accounts: WalletAccounts,
        cu_limit: int,
        cu_price: int,
        blockhash: Hash,
    ) -> tuple[MessageV0, dict[int, str]]:
        """The message, trimmed to fit a packet: fewer DLMM bin arrays (the farthest first, see
        dlmm_arrays_by_priority), then no idempotent creation of the (already funded) input
        account, then no memo."""
        most = DLMM_BIN_ARRAYS + DLMM_BIN_ARRAYS_BEHIND
        attempts = [(n, True, True) for n in range(most, 0, -1)] + [(1, False, True), (1, False, False)]
        size = 0
        for bins, create_in, memo in attempts:
            swaps = [
                (leg.plan.venue, leg.make_ix(accounts.input_account, accounts.output_account, bins))
                for leg in legs
            ]
            ixs, roles = compose_instructions(
                self._wallet.pubkey, plan, accounts, swaps, cu_limit, cu_price, create_in, memo
            )
            try:
                message = MessageV0.try_compile(self._wallet.pubkey, ixs, [], blockhash)
            except Exception as exc:  # noqa: BLE001 - solders CompileError is no ValueError
                raise BuildFailed(f"cannot compile the transaction ({type(exc).__name__})", False) from None
            size = len(bytes(message)) + 1 + 64 * message.header.num_required_signatures
            if size <= PACKET_DATA_SIZE:
                return message, roles
        raise BuildFailed(
            f"the transaction does not fit in a packet ({size} > {PACKET_DATA_SIZE} bytes)", False
        )

    async def _priority_fee(self, legs: Sequence[_Leg], urgent: bool = False) -> int:
        writable = [k for leg in legs for k in leg.writable]
        percentile = self._urgent_fee_percentile if urgent else self._fee_percentile
        try:
            fee = await self._chain.recent_prioritization_fee(writable, percentile)
        except ChainError as exc:
            log.warning("prioritization fees unavailable; using 0", extra={"error": exc.message})
            return 0
        return min(fee, self._fee_cap)

    # -- the whole thing --------------------------------------------------------------------------

    async def build(self, plan: OrderPlan) -> BuiltTx:
        """Reads the pools, simulates, and returns the signed transaction to store and send.

        Raises BuildFailed (nothing to send) or ChainError (the chain could not be read)."""
        return self.sign(await self.draft(plan))

    async def draft(self, plan: OrderPlan) -> Draft:
        """Everything but the signature: the pools read, the transaction simulated (unsigned) and
        its compute budget set from the simulation. Nothing leaves the process signed.

        Raises BuildFailed (nothing to send) or ChainError (the chain could not be read)."""
        try:
            legs = await self._legs(plan)
        except QuoteError as exc:  # e.g. BitmapExtensionAccountIsNotProvided while finding bin arrays
            raise BuildFailed(f"{exc.venue} cannot route the swap ({exc.name})", False) from None
        accounts = self.wallet_accounts(plan, legs)
        cu_price = await self._priority_fee(legs, plan.urgent)
        blockhash, last_valid = await self._chain.latest_blockhash()

        draft, roles = self._compile(plan, legs, accounts, MAX_COMPUTE_UNITS, cu_price, blockhash)
        simulation = await self._chain.simulate(_unsigned(draft))
        if simulation.err == "BlockhashNotFound":
            # The shared blockhash went stale under us (a node behind another, a cache across a
            # restart): take a fresh one, once.
            self._chain.forget_blockhash()
            blockhash, last_valid = await self._chain.latest_blockhash()
            draft, roles = self._compile(plan, legs, accounts, MAX_COMPUTE_UNITS, cu_price, blockhash)
            simulation = await self._chain.simulate(_unsigned(draft))
        if simulation.err is not None:
            reason, retryable = describe_transaction_error(simulation.err, roles)
            log.info(
                "simulation failed",
                extra={"reason": reason, "err": simulation.err, "logs": simulation.logs[-8:]},
            )
            raise BuildFailed(reason, retryable)
        if simulation.units_consumed:
            cu_limit = min(
                MAX_COMPUTE_UNITS, math.ceil(simulation.units_consumed * CU_MARGIN_NUM / CU_MARGIN_DEN)
            )
        else:
            cu_limit = DEFAULT_OVERHEAD_UNITS + sum(DEFAULT_LEG_UNITS[leg.plan.venue] for leg in legs)

        message, roles = self._compile(plan, legs, accounts, cu_limit, cu_price, blockhash)
        return Draft(message, blockhash, last_valid, cu_limit, cu_price, roles, accounts)

    def sign(self, draft: Draft) -> BuiltTx:
        """The drafted transaction, signed by the wallet."""
        tx = self._wallet.sign(draft.message)
        return BuiltTx(
            tx=tx,
            raw=bytes(tx),
            signature=tx.signatures[0],
            blockhash=draft.blockhash,
            last_valid_block_height=draft.last_valid_block_height,
            compute_unit_limit=draft.compute_unit_limit,
            compute_unit_price=draft.compute_unit_price,
            roles=draft.roles,
            accounts=draft.accounts,
        )
