"""Raydium CPMM (``raydium-cp-swap``): accounts, exact swap math and the swap instructions.

``PoolState`` is a packed zero-copy account (637 bytes with its discriminator), ``AmmConfig`` a
Borsh account (236 bytes); both round-trip byte for byte. The math mirrors
``CurveCalculator::swap_base_input`` / ``swap_base_output`` (``curve/calculator.rs``), ``Fees``
(``curve/fees.rs``), ``ConstantProductCurve`` and the instruction handlers ``swap_base_input`` /
``swap_base_output`` (order of checks, Token-2022 transfer fees on both legs, fee accrual in
``PoolState::update_fees``). Integers only.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from common.dex.errors import ANCHOR_ERRORS, LayoutError, QuoteError, lookup_error
from common.dex.spl_token import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    MAX_FEE_BASIS_POINTS,
    TOKEN_PROGRAM_ID,
    TransferFeeConfig,
    associated_token_address,
)

__all__ = [
    "AMM_CONFIG_SIZE",
    "AUTH_SEED",
    "FEE_RATE_DENOMINATOR",
    "POOL_STATE_SIZE",
    "POOL_STATE_TOKEN_0_MINT_OFFSET",
    "POOL_STATE_TOKEN_1_MINT_OFFSET",
    "PROGRAM_ERRORS",
    "SLIPPAGE_ERROR_CODES",
    "AmmConfig",
    "CpmmSwapResult",
    "PoolState",
    "SwapIx",
    "authority_pda",
    "decode_amm_config",
    "decode_pool_state",
    "encode_amm_config",
    "encode_pool_state",
    "error_message",
    "error_name",
    "parse_swap_base_input",
    "parse_swap_base_output",
    "quote_exact_in",
    "quote_exact_out",
    "swap_base_input_ix",
    "swap_base_output_ix",
]

VENUE: Final = "raydium_cpmm"
AUTH_SEED: Final = b"vault_and_lp_mint_auth_seed"
FEE_RATE_DENOMINATOR: Final = 1_000_000
_U64_MAX: Final = (1 << 64) - 1

DISC_POOL_STATE: Final = bytes([247, 237, 227, 245, 215, 195, 222, 70])
DISC_AMM_CONFIG: Final = bytes([218, 244, 33, 104, 203, 203, 43, 111])
DISC_SWAP_BASE_INPUT: Final = bytes([143, 190, 90, 218, 196, 30, 51, 222])
DISC_SWAP_BASE_OUTPUT: Final = bytes([55, 217, 98, 86, 163, 74, 180, 173])

# Pool status bits (``PoolStatusBitIndex``): set = disabled.
STATUS_DEPOSIT_DISABLED: Final = 1
STATUS_WITHDRAW_DISABLED: Final = 2
STATUS_SWAP_DISABLED: Final = 4

_POOL_STATE = struct.Struct("<8s" + "32s" * 10 + "BBBBB" + "QQQQQQQ" + "BB6sQQ" + "224s")
POOL_STATE_SIZE: Final = _POOL_STATE.size  # 637
# Where the mints sit in a PoolState account (after the discriminator, amm_config, pool_creator,
# both vaults and lp_mint): the offsets `getProgramAccounts` memcmp filters use to find pools.
POOL_STATE_TOKEN_0_MINT_OFFSET: Final = struct.calcsize("<8s" + "32s" * 5)  # 168
POOL_STATE_TOKEN_1_MINT_OFFSET: Final = POOL_STATE_TOKEN_0_MINT_OFFSET + 32  # 200
_AMM_CONFIG = struct.Struct("<8sBBHQQQQ32s32sQ120s")
AMM_CONFIG_SIZE: Final = _AMM_CONFIG.size  # 236
_SWAP_ARGS = struct.Struct("<8sQQ")

# The program's own errors (``error.rs``), by code: (name, message). Anchor numbers them from 6000.
PROGRAM_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    6000: ("NotApproved", "Not approved"),
    6001: ("InvalidOwner", "Input account owner is not the program address"),
    6002: ("EmptySupply", "Input token account empty"),
    6003: ("InvalidInput", "InvalidInput"),
    6004: ("IncorrectLpMint", "Address of the provided lp token mint is incorrect"),
    6005: ("ExceededSlippage", "Exceeds desired slippage limit"),
    6006: ("ZeroTradingTokens", "Given pool token amount results in zero trading tokens"),
    6007: ("NotSupportMint", "Not support token_2022 mint extension"),
    6008: ("InvalidVault", "invaild vault"),
    6009: ("InitLpAmountTooLess", "Init lp amount is too less(Because 100 amount lp will be locked)"),
    6010: ("TransferFeeCalculateNotMatch", "TransferFee calculate not match"),
    6011: ("MathOverflow", "Math overflow"),
    6012: ("InsufficientVault", "Insufficient vault"),
    6013: ("InvalidFeeModel", "Invalid fee model"),
    6014: ("NoFeeCollect", "Fee is zero"),
}
SLIPPAGE_ERROR_CODES: Final = frozenset({6005})

_ERRORS_BY_NAME: Final[dict[str, tuple[int | None, str]]] = {
    name: (code, message) for code, (name, message) in {**ANCHOR_ERRORS, **PROGRAM_ERRORS}.items()
}
_ERRORS_BY_NAME["Panic"] = (None, "the program panics (arithmetic overflow or division by zero)")


def error_name(code: int) -> str | None:
    """The name of the error ``Custom(code)`` this program (or Anchor inside it) returns, e.g.
    6005 -> ``"ExceededSlippage"``, 2505 -> ``"RequireGtViolated"``; None for an unknown code."""
    found = lookup_error(PROGRAM_ERRORS, code)
    return None if found is None else found[0]


def error_message(code: int) -> str | None:
    """The program's message for ``Custom(code)``; None for an unknown code."""
    found = lookup_error(PROGRAM_ERRORS, code)
    return None if found is None else found[1]


def _err(name: str) -> QuoteError:
    code, message = _ERRORS_BY_NAME[name]
    return QuoteError(code, name, message, VENUE)


# --------------------------------------------------------------------------------------------
# accounts


@dataclass(frozen=True, slots=True)
class PoolState:
    """``PoolState`` (``states/pool.rs``); ``padding`` keeps the trailing 28 u64 verbatim."""

    amm_config: Pubkey
    pool_creator: Pubkey
    token_0_vault: Pubkey
    token_1_vault: Pubkey
    lp_mint: Pubkey
    token_0_mint: Pubkey
    token_1_mint: Pubkey
    token_0_program: Pubkey
    token_1_program: Pubkey
    observation_key: Pubkey
    auth_bump: int
    status: int
    lp_mint_decimals: int
    mint_0_decimals: int
    mint_1_decimals: int
    lp_supply: int
    protocol_fees_token_0: int
    protocol_fees_token_1: int
    fund_fees_token_0: int
    fund_fees_token_1: int
    open_time: int
    recent_epoch: int
    creator_fee_on: int = 0
    enable_creator_fee: int = 0
    padding1: bytes = bytes(6)
    creator_fees_token_0: int = 0
    creator_fees_token_1: int = 0
    padding: bytes = bytes(224)
    tail: bytes = b""

    def swap_enabled(self) -> bool:
        """``get_status_by_bit(PoolStatusBitIndex::Swap)``."""
        return not self.status & STATUS_SWAP_DISABLED

    def reserves(self, vault_0_amount: int, vault_1_amount: int) -> tuple[int, int]:
        """``vault_amount_without_fee``: vault balances less the fees the pool holds for others.

        Raises ``InsufficientVault`` like the program when fees exceed a vault.
        """
        r0 = vault_0_amount - self.protocol_fees_token_0 - self.fund_fees_token_0 - self.creator_fees_token_0
        r1 = vault_1_amount - self.protocol_fees_token_1 - self.fund_fees_token_1 - self.creator_fees_token_1
        if r0 < 0 or r1 < 0:
            raise _err("InsufficientVault")
        return r0, r1


@dataclass(frozen=True, slots=True)
class AmmConfig:
    """``AmmConfig`` (``states/config.rs``); rates are per 1e6."""

    bump: int
    disable_create_pool: bool
    index: int
    trade_fee_rate: int
    protocol_fee_rate: int
    fund_fee_rate: int
    create_pool_fee: int
    protocol_owner: Pubkey
    fund_owner: Pubkey
    creator_fee_rate: int = 0
    padding: bytes = bytes(120)
    tail: bytes = b""


def _check(
    address: Pubkey, owner: Pubkey, program_id: Pubkey, data: bytes, what: str, disc: bytes, size: int
) -> None:
    if owner != program_id:
        raise LayoutError(address, what, f"owner {owner} is not the CPMM program {program_id}")
    if len(data) < size:
        raise LayoutError(address, what, f"size {len(data)} < {size}")
    if data[:8] != disc:
        raise LayoutError(address, what, f"discriminator {data[:8].hex()} != {disc.hex()}")


def decode_pool_state(address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey) -> PoolState:
    """Decode a ``PoolState`` account, checking owner, size and discriminator."""
    _check(address, owner, program_id, data, "raydium_cpmm PoolState", DISC_POOL_STATE, POOL_STATE_SIZE)
    f = _POOL_STATE.unpack_from(data)
    k = [Pubkey.from_bytes(b) for b in f[1:11]]
    return PoolState(
        amm_config=k[0],
        pool_creator=k[1],
        token_0_vault=k[2],
        token_1_vault=k[3],
        lp_mint=k[4],
        token_0_mint=k[5],
        token_1_mint=k[6],
        token_0_program=k[7],
        token_1_program=k[8],
        observation_key=k[9],
        auth_bump=f[11],
        status=f[12],
        lp_mint_decimals=f[13],
        mint_0_decimals=f[14],
        mint_1_decimals=f[15],
        lp_supply=f[16],
        protocol_fees_token_0=f[17],
        protocol_fees_token_1=f[18],
        fund_fees_token_0=f[19],
        fund_fees_token_1=f[20],
        open_time=f[21],
        recent_epoch=f[22],
        creator_fee_on=f[23],
        enable_creator_fee=f[24],
        padding1=f[25],
        creator_fees_token_0=f[26],
        creator_fees_token_1=f[27],
        padding=f[28],
        tail=bytes(data[POOL_STATE_SIZE:]),
    )


def encode_pool_state(pool: PoolState) -> bytes:
    """Encode a ``PoolState`` account; inverse of :func:`decode_pool_state`."""
    return (
        _POOL_STATE.pack(
            DISC_POOL_STATE,
            bytes(pool.amm_config),
            bytes(pool.pool_creator),
            bytes(pool.token_0_vault),
            bytes(pool.token_1_vault),
            bytes(pool.lp_mint),
            bytes(pool.token_0_mint),
            bytes(pool.token_1_mint),
            bytes(pool.token_0_program),
            bytes(pool.token_1_program),
            bytes(pool.observation_key),
            pool.auth_bump,
            pool.status,
            pool.lp_mint_decimals,
            pool.mint_0_decimals,
            pool.mint_1_decimals,
            pool.lp_supply,
            pool.protocol_fees_token_0,
            pool.protocol_fees_token_1,
            pool.fund_fees_token_0,
            pool.fund_fees_token_1,
            pool.open_time,
            pool.recent_epoch,
            pool.creator_fee_on,
            pool.enable_creator_fee,
            pool.padding1,
            pool.creator_fees_token_0,
            pool.creator_fees_token_1,
            pool.padding,
        )
        + pool.tail
    )


def decode_amm_config(address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey) -> AmmConfig:
    """Decode an ``AmmConfig`` account, checking owner, size and discriminator."""
    _check(address, owner, program_id, data, "raydium_cpmm AmmConfig", DISC_AMM_CONFIG, AMM_CONFIG_SIZE)
    (_, bump, disable, index, trade, protocol, fund, create_fee, p_owner, f_owner, creator, padding) = (
        _AMM_CONFIG.unpack_from(data)
    )
    if disable > 1:
        raise LayoutError(
            address, "raydium_cpmm AmmConfig", f"disable_create_pool byte {disable} is not a bool"
        )
    return AmmConfig(
        bump,
        bool(disable),
        index,
        trade,
        protocol,
        fund,
        create_fee,
        Pubkey.from_bytes(p_owner),
        Pubkey.from_bytes(f_owner),
        creator,
        padding,
        bytes(data[AMM_CONFIG_SIZE:]),
    )


def encode_amm_config(config: AmmConfig) -> bytes:
    """Encode an ``AmmConfig`` account; inverse of :func:`decode_amm_config`."""
    return (
        _AMM_CONFIG.pack(
            DISC_AMM_CONFIG,
            config.bump,
            int(config.disable_create_pool),
            config.index,
            config.trade_fee_rate,
            config.protocol_fee_rate,
            config.fund_fee_rate,
            config.create_pool_fee,
            bytes(config.protocol_owner),
            bytes(config.fund_owner),
            config.creator_fee_rate,
            config.padding,
        )
        + config.tail
    )


# --------------------------------------------------------------------------------------------
# math


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pre_fee_amount(post_fee_amount: int, fee_rate: int) -> int:
    """``Fees::calculate_pre_fee_amount``: ceil(post * 1e6 / (1e6 - rate))."""
    if fee_rate == 0:
        return post_fee_amount
    return _ceil_div(post_fee_amount * FEE_RATE_DENOMINATOR, FEE_RATE_DENOMINATOR - fee_rate)


def _transfer_fee(fee: TransferFeeConfig | None, epoch: int, amount: int) -> int:
    """``get_transfer_fee``."""
    return 0 if fee is None else fee.calculate_epoch_fee(epoch, amount)


def _transfer_inverse_fee(fee: TransferFeeConfig | None, epoch: int, post_fee_amount: int) -> int:
    """``get_transfer_inverse_fee``, including its consistency check."""
    if fee is None:
        return 0
    if post_fee_amount == 0:
        raise _err("InvalidInput")
    epoch_fee = fee.get_epoch_fee(epoch)
    if epoch_fee.transfer_fee_basis_points == MAX_FEE_BASIS_POINTS:
        return epoch_fee.maximum_fee
    inverse = epoch_fee.calculate_inverse_fee(post_fee_amount)
    if inverse is None:
        raise _err("Panic")
    if inverse != epoch_fee.calculate_fee(post_fee_amount + inverse):
        raise _err("TransferFeeCalculateNotMatch")
    return inverse


@dataclass(frozen=True, slots=True)
class CpmmSwapResult:
    """A swap as the program executes it.

    Token flows: the user sends ``amount_in``; ``amount_in_after_transfer_fee`` reaches the input
    vault; ``amount_out_before_transfer_fee`` leaves the output vault and the user receives
    ``amount_out``. ``trade_fee`` (in the input token) includes ``protocol_fee`` and ``fund_fee``;
    ``creator_fee`` is in the input token when ``creator_fee_on_input`` else in the output token.
    ``pool`` is the pool state with the accrued fees and ``recent_epoch``; ``vault_0_amount`` /
    ``vault_1_amount`` the vault balances after the swap.
    """

    zero_for_one: bool
    amount_in: int
    amount_in_after_transfer_fee: int
    amount_out_before_transfer_fee: int
    amount_out: int
    input_transfer_fee: int
    output_transfer_fee: int
    trade_fee: int
    protocol_fee: int
    fund_fee: int
    creator_fee: int
    creator_fee_on_input: bool
    reserve_in_before: int
    reserve_out_before: int
    pool: PoolState
    vault_0_amount: int
    vault_1_amount: int


def _creator_fee_on_input(pool: PoolState, zero_for_one: bool) -> bool:
    """``PoolState::is_creator_fee_on_input``."""
    mode = pool.creator_fee_on
    if mode == 0:
        return True
    if mode == 1:
        return zero_for_one
    if mode == 2:
        return not zero_for_one
    raise _err("InvalidFeeModel")


def _apply(
    pool: PoolState,
    zero_for_one: bool,
    creator_on_input: bool,
    protocol_fee: int,
    fund_fee: int,
    creator_fee: int,
    epoch: int,
) -> PoolState:
    """``PoolState::update_fees`` and ``recent_epoch``."""
    if zero_for_one:
        changes = {
            "protocol_fees_token_0": pool.protocol_fees_token_0 + protocol_fee,
            "fund_fees_token_0": pool.fund_fees_token_0 + fund_fee,
        }
    else:
        changes = {
            "protocol_fees_token_1": pool.protocol_fees_token_1 + protocol_fee,
            "fund_fees_token_1": pool.fund_fees_token_1 + fund_fee,
        }
    if creator_fee:
        creator_token_0 = zero_for_one == creator_on_input
        if creator_token_0:
            changes["creator_fees_token_0"] = pool.creator_fees_token_0 + creator_fee
        else:
            changes["creator_fees_token_1"] = pool.creator_fees_token_1 + creator_fee
    changes["recent_epoch"] = epoch
    for value in changes.values():
        if value > _U64_MAX:
            raise _err("Panic")
    return dataclasses.replace(pool, **changes)  # type: ignore[arg-type]


def _check_open(pool: PoolState, now_unix_ts: int) -> None:
    if not pool.swap_enabled() or now_unix_ts < pool.open_time:
        raise _err("NotApproved")


def _directional_reserves(
    pool: PoolState, vault_0_amount: int, vault_1_amount: int, zero_for_one: bool
) -> tuple[int, int]:
    r0, r1 = pool.reserves(vault_0_amount, vault_1_amount)
    # token_price_x32 divides by both reserves: the program panics on an empty side
    if r0 == 0 or r1 == 0:
        raise _err("Panic")
    return (r0, r1) if zero_for_one else (r1, r0)


def quote_exact_in(
    pool: PoolState,
    config: AmmConfig,
    vault_0_amount: int,
    vault_1_amount: int,
    amount_in: int,
    zero_for_one: bool,
    now_unix_ts: int,
    mint_in_fee: TransferFeeConfig | None = None,
    mint_out_fee: TransferFeeConfig | None = None,
    epoch: int = 0,
    minimum_amount_out: int = 0,
) -> CpmmSwapResult:
    """``swap_base_input``: what the user receives for ``amount_in``.

    Checks in the program's order: swap enabled and ``open_time`` reached (``NotApproved``), input
    left after its transfer fee (``RequireGtViolated``), output left after its transfer fee
    (``RequireGtViolated``), ``minimum_amount_out`` (``ExceededSlippage``), constant product not
    decreasing (``RequireGteViolated``).
    """
    _check_open(pool, now_unix_ts)
    input_transfer_fee = _transfer_fee(mint_in_fee, epoch, amount_in)
    actual_in = amount_in - input_transfer_fee if amount_in > input_transfer_fee else 0
    if actual_in <= 0:
        raise _err("RequireGtViolated")
    creator_on_input = _creator_fee_on_input(pool, zero_for_one)
    reserve_in, reserve_out = _directional_reserves(pool, vault_0_amount, vault_1_amount, zero_for_one)
    creator_rate = config.creator_fee_rate if pool.enable_creator_fee else 0
    trade_rate = config.trade_fee_rate

    # CurveCalculator::swap_base_input
    creator_fee = 0
    if creator_on_input:
        total_fee = _ceil_div(actual_in * (trade_rate + creator_rate), FEE_RATE_DENOMINATOR)
        creator_fee = (
            total_fee * creator_rate // (trade_rate + creator_rate) if trade_rate + creator_rate else 0
        )
        trade_fee = total_fee - creator_fee
        in_less_fees = actual_in - total_fee
    else:
        trade_fee = _ceil_div(actual_in * trade_rate, FEE_RATE_DENOMINATOR)
        in_less_fees = actual_in - trade_fee
    protocol_fee = trade_fee * config.protocol_fee_rate // FEE_RATE_DENOMINATOR
    fund_fee = trade_fee * config.fund_fee_rate // FEE_RATE_DENOMINATOR
    swapped_out = in_less_fees * reserve_out // (reserve_in + in_less_fees)
    if creator_on_input:
        amount_out = swapped_out
    else:
        creator_fee = _ceil_div(swapped_out * creator_rate, FEE_RATE_DENOMINATOR)
        amount_out = swapped_out - creator_fee
    new_in = reserve_in + in_less_fees
    new_out = reserve_out - swapped_out

    output_transfer_fee = _transfer_fee(mint_out_fee, epoch, amount_out)
    received = amount_out - output_transfer_fee
    if received <= 0:
        raise _err("RequireGtViolated")
    if received < minimum_amount_out:
        raise _err("ExceededSlippage")
    if new_in * new_out < reserve_in * reserve_out:
        raise _err("RequireGteViolated")

    new_pool = _apply(pool, zero_for_one, creator_on_input, protocol_fee, fund_fee, creator_fee, epoch)
    if zero_for_one:
        v0, v1 = vault_0_amount + actual_in, vault_1_amount - amount_out
    else:
        v0, v1 = vault_0_amount - amount_out, vault_1_amount + actual_in
    return CpmmSwapResult(
        zero_for_one=zero_for_one,
        amount_in=amount_in,
        amount_in_after_transfer_fee=actual_in,
        amount_out_before_transfer_fee=amount_out,
        amount_out=received,
        input_transfer_fee=input_transfer_fee,
        output_transfer_fee=output_transfer_fee,
        trade_fee=trade_fee,
        protocol_fee=protocol_fee,
        fund_fee=fund_fee,
        creator_fee=creator_fee,
        creator_fee_on_input=creator_on_input,
        reserve_in_before=reserve_in,
        reserve_out_before=reserve_out,
        pool=new_pool,
        vault_0_amount=v0,
        vault_1_amount=v1,
    )


def quote_exact_out(
    pool: PoolState,
    config: AmmConfig,
    vault_0_amount: int,
    vault_1_amount: int,
    amount_out: int,
    zero_for_one: bool,
    now_unix_ts: int,
    mint_in_fee: TransferFeeConfig | None = None,
    mint_out_fee: TransferFeeConfig | None = None,
    epoch: int = 0,
    max_amount_in: int = _U64_MAX,
) -> CpmmSwapResult:
    """``swap_base_output``: what the user must send to receive exactly ``amount_out``.

    Checks in the program's order: ``amount_out > 0`` (``RequireGtViolated``), swap enabled and
    open (``NotApproved``), output not above the reserve (the program panics), input above zero
    (``RequireGtViolated``), ``max_amount_in`` against what the user sends (``ExceededSlippage``).
    """
    if amount_out <= 0:
        raise _err("RequireGtViolated")
    _check_open(pool, now_unix_ts)
    out_transfer_fee = _transfer_inverse_fee(mint_out_fee, epoch, amount_out)
    gross_out = amount_out + out_transfer_fee
    creator_on_input = _creator_fee_on_input(pool, zero_for_one)
    reserve_in, reserve_out = _directional_reserves(pool, vault_0_amount, vault_1_amount, zero_for_one)
    creator_rate = config.creator_fee_rate if pool.enable_creator_fee else 0
    trade_rate = config.trade_fee_rate

    # CurveCalculator::swap_base_output
    creator_fee = 0
    if creator_on_input:
        actual_out = gross_out
    else:
        actual_out = _pre_fee_amount(gross_out, creator_rate)
        creator_fee = actual_out - gross_out
    if actual_out >= reserve_out:
        raise _err("Panic")
    swapped_in = _ceil_div(reserve_in * actual_out, reserve_out - actual_out)
    if creator_on_input:
        with_fee = _pre_fee_amount(swapped_in, trade_rate + creator_rate)
        total_fee = with_fee - swapped_in
        creator_fee = (
            total_fee * creator_rate // (trade_rate + creator_rate) if trade_rate + creator_rate else 0
        )
        trade_fee = total_fee - creator_fee
    else:
        with_fee = _pre_fee_amount(swapped_in, trade_rate)
        trade_fee = with_fee - swapped_in
    protocol_fee = trade_fee * config.protocol_fee_rate // FEE_RATE_DENOMINATOR
    fund_fee = trade_fee * config.fund_fee_rate // FEE_RATE_DENOMINATOR
    new_in = reserve_in + swapped_in
    new_out = reserve_out - actual_out

    input_amount = with_fee
    if input_amount > _U64_MAX:
        raise _err("Panic")
    if input_amount <= 0:
        raise _err("RequireGtViolated")
    input_transfer_fee = _transfer_inverse_fee(mint_in_fee, epoch, input_amount)
    send = input_amount + input_transfer_fee
    if send > max_amount_in:
        raise _err("ExceededSlippage")
    if new_in * new_out < reserve_in * reserve_out:
        raise _err("RequireGteViolated")

    new_pool = _apply(pool, zero_for_one, creator_on_input, protocol_fee, fund_fee, creator_fee, epoch)
    arrived = send - _transfer_fee(mint_in_fee, epoch, send)
    received = gross_out - _transfer_fee(mint_out_fee, epoch, gross_out)
    if zero_for_one:
        v0, v1 = vault_0_amount + arrived, vault_1_amount - gross_out
    else:
        v0, v1 = vault_0_amount - gross_out, vault_1_amount + arrived
    return CpmmSwapResult(
        zero_for_one=zero_for_one,
        amount_in=send,
        amount_in_after_transfer_fee=arrived,
        amount_out_before_transfer_fee=gross_out,
        amount_out=received,
        input_transfer_fee=send - arrived,
        output_transfer_fee=gross_out - received,
        trade_fee=trade_fee,
        protocol_fee=protocol_fee,
        fund_fee=fund_fee,
        creator_fee=creator_fee,
        creator_fee_on_input=creator_on_input,
        reserve_in_before=reserve_in,
        reserve_out_before=reserve_out,
        pool=new_pool,
        vault_0_amount=v0,
        vault_1_amount=v1,
    )


# --------------------------------------------------------------------------------------------
# instructions


@lru_cache(maxsize=64)
def authority_pda(program_id: Pubkey) -> Pubkey:
    """The vault and LP mint authority: seeds [b"vault_and_lp_mint_auth_seed"]."""
    return Pubkey.find_program_address([AUTH_SEED], program_id)[0]


@dataclass(frozen=True, slots=True)
class SwapIx:
    """A decoded ``swap_base_input`` / ``swap_base_output`` instruction.

    For ``swap_base_input`` ``amount_a``/``amount_b`` are ``amount_in``/``minimum_amount_out``;
    for ``swap_base_output`` they are ``max_amount_in``/``amount_out`` (``base_output`` set).
    """

    program_id: Pubkey
    payer: Pubkey
    authority: Pubkey
    amm_config: Pubkey
    pool_state: Pubkey
    input_token_account: Pubkey
    output_token_account: Pubkey
    input_vault: Pubkey
    output_vault: Pubkey
    input_token_program: Pubkey
    output_token_program: Pubkey
    input_token_mint: Pubkey
    output_token_mint: Pubkey
    observation_state: Pubkey
    amount_a: int
    amount_b: int
    base_output: bool = False

    @property
    def amount_in(self) -> int:
        """``amount_in`` (base input) or ``max_amount_in`` (base output)."""
        return self.amount_a

    @property
    def minimum_amount_out(self) -> int:
        """``minimum_amount_out`` (base input) or ``amount_out`` (base output)."""
        return self.amount_b


def _swap_accounts(
    program_id: Pubkey,
    payer: Pubkey,
    pool: Pubkey,
    amm_config: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_vault: Pubkey,
    output_vault: Pubkey,
    input_token_program: Pubkey,
    output_token_program: Pubkey,
    input_mint: Pubkey,
    output_mint: Pubkey,
    observation: Pubkey,
) -> list[AccountMeta]:
    return [
        AccountMeta(payer, True, False),
        AccountMeta(authority_pda(program_id), False, False),
        AccountMeta(amm_config, False, False),
        AccountMeta(pool, False, True),
        AccountMeta(input_token_account, False, True),
        AccountMeta(output_token_account, False, True),
        AccountMeta(input_vault, False, True),
        AccountMeta(output_vault, False, True),
        AccountMeta(input_token_program, False, False),
        AccountMeta(output_token_program, False, False),
        AccountMeta(input_mint, False, False),
        AccountMeta(output_mint, False, False),
        AccountMeta(observation, False, True),
    ]


def swap_base_input_ix(
    program_id: Pubkey,
    payer: Pubkey,
    pool: Pubkey,
    amm_config: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_vault: Pubkey,
    output_vault: Pubkey,
    input_token_program: Pubkey,
    output_token_program: Pubkey,
    input_mint: Pubkey,
    output_mint: Pubkey,
    observation: Pubkey,
    amount_in: int,
    minimum_amount_out: int,
) -> Instruction:
    """``swap_base_input(amount_in, minimum_amount_out)`` with the program's ``Swap`` accounts."""
    accounts = _swap_accounts(
        program_id,
        payer,
        pool,
        amm_config,
        input_token_account,
        output_token_account,
        input_vault,
        output_vault,
        input_token_program,
        output_token_program,
        input_mint,
        output_mint,
        observation,
    )
    return Instruction(
        program_id, _SWAP_ARGS.pack(DISC_SWAP_BASE_INPUT, amount_in, minimum_amount_out), accounts
    )


def swap_base_output_ix(
    program_id: Pubkey,
    payer: Pubkey,
    pool: Pubkey,
    amm_config: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_vault: Pubkey,
    output_vault: Pubkey,
    input_token_program: Pubkey,
    output_token_program: Pubkey,
    input_mint: Pubkey,
    output_mint: Pubkey,
    observation: Pubkey,
    max_amount_in: int,
    amount_out: int,
) -> Instruction:
    """``swap_base_output(max_amount_in, amount_out)`` with the same accounts as the input swap."""
    accounts = _swap_accounts(
        program_id,
        payer,
        pool,
        amm_config,
        input_token_account,
        output_token_account,
        input_vault,
        output_vault,
        input_token_program,
        output_token_program,
        input_mint,
        output_mint,
        observation,
    )
    return Instruction(
        program_id, _SWAP_ARGS.pack(DISC_SWAP_BASE_OUTPUT, max_amount_in, amount_out), accounts
    )


def _parse(ix_data: bytes, account_keys: list[Pubkey], disc: bytes, program_id: Pubkey | None) -> SwapIx:
    if len(ix_data) != _SWAP_ARGS.size:
        raise ValueError(f"swap data must be {_SWAP_ARGS.size} bytes, got {len(ix_data)}")
    got, a, b = _SWAP_ARGS.unpack(ix_data)
    if got != disc:
        raise ValueError(f"unexpected instruction discriminator {got.hex()}")
    if len(account_keys) < 13:
        raise ValueError(f"swap needs 13 accounts, got {len(account_keys)}")
    k = account_keys
    if program_id is not None and k[1] != authority_pda(program_id):
        raise ValueError("account 2 is not the program's vault authority")
    return SwapIx(
        program_id=program_id if program_id is not None else Pubkey.default(),
        payer=k[0],
        authority=k[1],
        amm_config=k[2],
        pool_state=k[3],
        input_token_account=k[4],
        output_token_account=k[5],
        input_vault=k[6],
        output_vault=k[7],
        input_token_program=k[8],
        output_token_program=k[9],
        input_token_mint=k[10],
        output_token_mint=k[11],
        observation_state=k[12],
        amount_a=a,
        amount_b=b,
        base_output=disc == DISC_SWAP_BASE_OUTPUT,
    )


def parse_swap_base_input(
    ix_data: bytes, account_keys: list[Pubkey], program_id: Pubkey | None = None
) -> SwapIx:
    """Decode ``swap_base_input``; with ``program_id``, also check the authority PDA.

    Raises ``ValueError`` on anything else.
    """
    return _parse(ix_data, account_keys, DISC_SWAP_BASE_INPUT, program_id)


def parse_swap_base_output(
    ix_data: bytes, account_keys: list[Pubkey], program_id: Pubkey | None = None
) -> SwapIx:
    """Decode ``swap_base_output``; with ``program_id``, also check the authority PDA."""
    return _parse(ix_data, account_keys, DISC_SWAP_BASE_OUTPUT, program_id)


# --------------------------------------------------------------------------------------------
# pool creation: `initialize`

DISC_INITIALIZE: Final = bytes([175, 175, 109, 31, 13, 152, 155, 237])  # sha256("global:initialize")[:8]
_INITIALIZE_ARGS = struct.Struct("<8sQQQ")
INITIALIZE_ACCOUNTS: Final = 20
LP_MINT_DECIMALS: Final = 9
LOCKED_LP_AMOUNT: Final = 100  # `initialize` keeps 100 LP base units in the pool for good
DISC_OBSERVATION_STATE: Final = bytes([122, 174, 197, 53, 129, 9, 165, 132])
OBSERVATION_STATE_SIZE: Final = 4075
# The wSOL token account each CPMM deployment sends its pool-creation fee to (a constant compiled
# into the program, `create_pool_fee_reveiver::id()`), by program id.
CREATE_POOL_FEE_RECEIVERS: Final[Mapping[str, str]] = {
    "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C": "DNXgeM9EiiaAbaWvwjHj9fQQLAX5ZsfHyvmYUNRAdNC8",
    "DRaycpLY18LhpbydsBWbVJtxpNv9oXPgjRSfpF2bWpYb": "G11FKBRaAkHAKuLCgLM6K6NUc9rTjPAznRCjZifrTQe2",
}
_SYSVAR_RENT: Final = Pubkey.from_string("SysvarRent111111111111111111111111111111111")
_SYSTEM_PROGRAM: Final = Pubkey.from_string("11111111111111111111111111111111")


def observation_data(pool: Pubkey) -> bytes:
    """A fresh ``ObservationState`` of `pool` (initialized, index 0, no observations yet)."""
    head = DISC_OBSERVATION_STATE + bytes([1]) + struct.pack("<H", 0) + bytes(pool)
    return head + bytes(OBSERVATION_STATE_SIZE - len(head))


@dataclass(frozen=True, slots=True)
class InitializeIx:
    """A decoded ``initialize(init_amount_0, init_amount_1, open_time)``, accounts in the order of
    the program's ``Initialize`` context."""

    creator: Pubkey
    amm_config: Pubkey
    authority: Pubkey
    pool_state: Pubkey
    token_0_mint: Pubkey
    token_1_mint: Pubkey
    lp_mint: Pubkey
    creator_token_0: Pubkey
    creator_token_1: Pubkey
    creator_lp_token: Pubkey
    token_0_vault: Pubkey
    token_1_vault: Pubkey
    create_pool_fee: Pubkey
    observation_state: Pubkey
    token_program: Pubkey
    token_0_program: Pubkey
    token_1_program: Pubkey
    associated_token_program: Pubkey
    system_program: Pubkey
    rent: Pubkey
    init_amount_0: int
    init_amount_1: int
    open_time: int


def amm_config_pda(program_id: Pubkey, index: int) -> Pubkey:
    """An AmmConfig's PDA: [b"amm_config", index as a big-endian u16]."""
    return Pubkey.find_program_address([b"amm_config", index.to_bytes(2, "big")], program_id)[0]


def pool_pda(program_id: Pubkey, amm_config: Pubkey, mint_0: Pubkey, mint_1: Pubkey) -> Pubkey:
    """The pool state's PDA: [b"pool", amm_config, token_0_mint, token_1_mint]."""
    return Pubkey.find_program_address(
        [b"pool", bytes(amm_config), bytes(mint_0), bytes(mint_1)], program_id
    )[0]


def pool_account_pdas(program_id: Pubkey, pool: Pubkey, mint_0: Pubkey, mint_1: Pubkey) -> dict[str, Pubkey]:
    """The accounts `initialize` derives from a pool address: both vaults, LP mint, observation."""

    def pda(*seeds: bytes) -> Pubkey:
        return Pubkey.find_program_address(list(seeds), program_id)[0]

    return {
        "token_0_vault": pda(b"pool_vault", bytes(pool), bytes(mint_0)),
        "token_1_vault": pda(b"pool_vault", bytes(pool), bytes(mint_1)),
        "lp_mint": pda(b"pool_lp_mint", bytes(pool)),
        "observation_state": pda(b"observation", bytes(pool)),
    }


def initialize_ix(
    program_id: Pubkey,
    creator: Pubkey,
    amm_config: Pubkey,
    create_pool_fee: Pubkey,
    mint_a: Pubkey,
    mint_b: Pubkey,
    amount_a: int,
    amount_b: int,
    *,
    token_program_a: Pubkey = TOKEN_PROGRAM_ID,
    token_program_b: Pubkey = TOKEN_PROGRAM_ID,
    open_time: int = 0,
) -> tuple[Instruction, InitializeIx]:
    """``initialize`` of the pool of two mints at the PDA of (config, token_0, token_1): the mints
    are sorted here (token_0 < token_1, as the program requires) together with their amounts and
    token programs; the creator pays from its associated token accounts. Open time 0: as soon as
    the program allows (it opens a pool one second after the creating block at the earliest)."""
    (mint_0, amount_0, program_0), (mint_1, amount_1, program_1) = sorted(
        ((mint_a, amount_a, token_program_a), (mint_b, amount_b, token_program_b)), key=lambda m: bytes(m[0])
    )
    pool = pool_pda(program_id, amm_config, mint_0, mint_1)
    derived = pool_account_pdas(program_id, pool, mint_0, mint_1)

    ix = InitializeIx(
        creator=creator,
        amm_config=amm_config,
        authority=authority_pda(program_id),
        pool_state=pool,
        token_0_mint=mint_0,
        token_1_mint=mint_1,
        lp_mint=derived["lp_mint"],
        creator_token_0=associated_token_address(creator, mint_0, program_0),
        creator_token_1=associated_token_address(creator, mint_1, program_1),
        creator_lp_token=associated_token_address(creator, derived["lp_mint"], TOKEN_PROGRAM_ID),
        token_0_vault=derived["token_0_vault"],
        token_1_vault=derived["token_1_vault"],
        create_pool_fee=create_pool_fee,
        observation_state=derived["observation_state"],
        token_program=TOKEN_PROGRAM_ID,
        token_0_program=program_0,
        token_1_program=program_1,
        associated_token_program=ASSOCIATED_TOKEN_PROGRAM_ID,
        system_program=_SYSTEM_PROGRAM,
        rent=_SYSVAR_RENT,
        init_amount_0=amount_0,
        init_amount_1=amount_1,
        open_time=open_time,
    )
    writable = {"creator", "pool_state", "lp_mint", "creator_token_0", "creator_token_1", "creator_lp_token",
                "token_0_vault", "token_1_vault", "create_pool_fee", "observation_state"}  # fmt: skip
    accounts = [
        AccountMeta(getattr(ix, name), name == "creator", name in writable) for name in _INITIALIZE_KEYS
    ]
    data = _INITIALIZE_ARGS.pack(DISC_INITIALIZE, amount_0, amount_1, open_time)
    return Instruction(program_id, data, accounts), ix


_INITIALIZE_KEYS: Final = tuple(f.name for f in dataclasses.fields(InitializeIx))[:INITIALIZE_ACCOUNTS]


def parse_initialize(ix_data: bytes, account_keys: list[Pubkey]) -> InitializeIx:
    """Decode ``initialize``; ValueError on a wrong discriminator or size, or too few accounts."""
    if len(ix_data) < _INITIALIZE_ARGS.size:
        raise ValueError(f"initialize data must be {_INITIALIZE_ARGS.size} bytes, got {len(ix_data)}")
    disc, amount_0, amount_1, open_time = _INITIALIZE_ARGS.unpack_from(ix_data)
    if disc != DISC_INITIALIZE:
        raise ValueError(f"unexpected instruction discriminator {disc.hex()}")
    if len(account_keys) < INITIALIZE_ACCOUNTS:
        raise ValueError(f"initialize needs {INITIALIZE_ACCOUNTS} accounts, got {len(account_keys)}")
    keys = dict(zip(_INITIALIZE_KEYS, account_keys, strict=False))
    return InitializeIx(**keys, init_amount_0=amount_0, init_amount_1=amount_1, open_time=open_time)
