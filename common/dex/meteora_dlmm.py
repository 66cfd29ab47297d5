"""Meteora DLMM (``lb_clmm`` 0.12): accounts, exact swap math and the ``swap2`` instruction.

Layouts are the program's bytemuck ``repr(C)`` structs (``LbPair``, ``BinArray`` of 70 ``Bin``,
``BinArrayBitmapExtension``, ``Oracle`` with its dynamic observations) behind an 8-byte Anchor
discriminator; every byte is kept so ``encode(decode(x)) == x``.

The swap walk mirrors the program's ``swap`` handler as published in the dlmm-sdk ``commons``
crate (``quote.rs``: ``quote_exact_in``/``quote_exact_out``, ``swap_exact_in_quote_at_bin``,
``get_exact_in_fill_amount_result``, ``split_fee``; ``extensions/lb_pair.rs``:
``update_references``, ``update_volatility_accumulator``, ``compute_fee``,
``compute_fee_from_amount``; ``math/u64x64_math.rs``: ``pow``) and the state transitions the
0.12 binary applies to bins (market-making amounts, fee-per-token accumulators, limit-order
queues), to the pair (active bin, volatility, protocol fees) and to the oracle.

All arithmetic is on Python ints with the program's u64/u128 bounds checked where the program
checks them; nothing is a float.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from common.dex.errors import ANCHOR_ERRORS, LayoutError, QuoteError, lookup_error
from common.dex.spl_token import TransferFeeConfig, transfer_fee_excluded_amount, transfer_fee_included_amount

__all__ = [
    "BIN_ARRAY_BITMAP_SIZE",
    "BIN_ARRAY_SIZE",
    "LB_PAIR_SIZE",
    "LB_PAIR_TOKEN_X_MINT_OFFSET",
    "LB_PAIR_TOKEN_Y_MINT_OFFSET",
    "MAX_BIN_ID",
    "MAX_BIN_PER_ARRAY",
    "MIN_BIN_ID",
    "PROGRAM_ERRORS",
    "SLIPPAGE_ERROR_CODES",
    "Bin",
    "BinArray",
    "BinArrayBitmapExtension",
    "BinFill",
    "DlmmSwapResult",
    "LbPair",
    "Observation",
    "Oracle",
    "RewardInfo",
    "StaticParameters",
    "Swap2Ix",
    "VariableParameters",
    "bin_array_bitmap_extension_pda",
    "bin_array_index",
    "bin_array_pda",
    "bin_arrays_around_active",
    "bin_arrays_for_swap",
    "bin_id_range",
    "decode_bin_array",
    "decode_bin_array_bitmap_extension",
    "decode_lb_pair",
    "decode_oracle",
    "encode_bin_array",
    "encode_bin_array_bitmap_extension",
    "encode_lb_pair",
    "encode_oracle",
    "error_message",
    "error_name",
    "event_authority_pda",
    "get_price_from_id",
    "oracle_pda",
    "parse_swap2",
    "pow_q64",
    "quote_exact_in",
    "quote_exact_out",
    "swap2_ix",
    "swap_exact_out2_ix",
    "swap_order",
    "update_oracle",
]

VENUE: Final = "meteora_dlmm"

# --------------------------------------------------------------------------------------------
# constants (lb_clmm ``constants.rs``)

MAX_BIN_PER_ARRAY: Final = 70
BIN_ARRAY_BITMAP_SIZE: Final = 512
EXTENSION_BINARRAY_BITMAP_SIZE: Final = 12
MIN_BIN_ID: Final = -443636
MAX_BIN_ID: Final = 443636
BASIS_POINT_MAX: Final = 10_000
FEE_PRECISION: Final = 1_000_000_000
MAX_FEE_RATE: Final = 100_000_000
LIMIT_ORDER_FEE_SHARE: Final = 5_000
HOST_FEE_BPS: Final = 2_000
SCALE_OFFSET: Final = 64
ONE_Q64: Final = 1 << SCALE_OFFSET
SAMPLE_LIFETIME: Final = 120

_U64_MAX: Final = (1 << 64) - 1
_U128_MAX: Final = (1 << 128) - 1
_U128_LIMIT: Final = 1 << 128
_MAX_EXPONENTIAL: Final = 0x80000

FUNCTION_TYPE_UNDETERMINED: Final = 0
FUNCTION_TYPE_LIQUIDITY_MINING: Final = 1
FUNCTION_TYPE_LIMIT_ORDER: Final = 2
COLLECT_FEE_MODE_INPUT_ONLY: Final = 0
COLLECT_FEE_MODE_ONLY_Y: Final = 1
PAIR_STATUS_ENABLED: Final = 0
PAIR_TYPE_PERMISSIONLESS: Final = 0
PAIR_TYPE_PERMISSION: Final = 1
PAIR_TYPE_CUSTOMIZABLE_PERMISSIONLESS: Final = 2
PAIR_TYPE_PERMISSIONLESS_V2: Final = 3
ACTIVATION_TYPE_SLOT: Final = 0
ACTIVATION_TYPE_TIMESTAMP: Final = 1

DISC_LB_PAIR: Final = bytes([33, 11, 49, 98, 181, 101, 177, 13])
DISC_BIN_ARRAY: Final = bytes([92, 142, 92, 220, 5, 148, 70, 181])
DISC_BITMAP_EXTENSION: Final = bytes([80, 111, 124, 113, 55, 237, 18, 5])
DISC_ORACLE: Final = bytes([139, 194, 131, 179, 140, 179, 229, 244])
DISC_SWAP2: Final = bytes([65, 75, 63, 76, 235, 91, 91, 136])
DISC_SWAP_EXACT_OUT2: Final = bytes([43, 215, 247, 132, 137, 60, 243, 81])

# The program's own errors (lb_clmm 0.12, as its published IDL lists them), by code: (name, message).
PROGRAM_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    6000: ("InvalidStartBinIndex", "Invalid start bin index"),
    6001: ("InvalidBinId", "Invalid bin id"),
    6002: ("InvalidInput", "Invalid input data"),
    6003: ("ExceededAmountSlippageTolerance", "Exceeded amount slippage tolerance"),
    6004: ("ExceededBinSlippageTolerance", "Exceeded bin slippage tolerance"),
    6005: ("CompositionFactorFlawed", "Composition factor flawed"),
    6006: ("NonPresetBinStep", "Non preset bin step"),
    6007: ("ZeroLiquidity", "Zero liquidity"),
    6008: ("InvalidPosition", "Invalid position"),
    6009: ("BinArrayNotFound", "Bin array not found"),
    6010: ("InvalidTokenMint", "Invalid token mint"),
    6011: ("InvalidAccountForSingleDeposit", "Invalid account for single deposit"),
    6012: ("PairInsufficientLiquidity", "Pair insufficient liquidity"),
    6013: ("InvalidFeeOwner", "Invalid fee owner"),
    6014: ("InvalidFeeWithdrawAmount", "Invalid fee withdraw amount"),
    6015: ("InvalidAdmin", "Invalid admin"),
    6016: ("IdenticalFeeOwner", "Identical fee owner"),
    6017: ("InvalidBps", "Invalid basis point"),
    6018: ("MathOverflow", "Math operation overflow"),
    6019: ("TypeCastFailed", "Type cast error"),
    6020: ("InvalidRewardIndex", "Invalid reward index"),
    6021: ("InvalidRewardDuration", "Invalid reward duration"),
    6022: ("RewardInitialized", "Reward already initialized"),
    6023: ("RewardUninitialized", "Reward not initialized"),
    6024: ("IdenticalFunder", "Identical funder"),
    6025: ("RewardCampaignInProgress", "Reward campaign in progress"),
    6026: ("IdenticalRewardDuration", "Reward duration is the same"),
    6027: ("InvalidBinArray", "Invalid bin array"),
    6028: ("NonContinuousBinArrays", "Bin arrays must be continuous"),
    6029: ("InvalidRewardVault", "Invalid reward vault"),
    6030: ("NonEmptyPosition", "Position is not empty"),
    6031: ("UnauthorizedAccess", "Unauthorized access"),
    6032: ("InvalidFeeParameter", "Invalid fee parameter"),
    6033: ("MissingOracle", "Missing oracle account"),
    6034: ("InsufficientSample", "Insufficient observation sample"),
    6035: ("InvalidLookupTimestamp", "Invalid lookup timestamp"),
    6036: ("BitmapExtensionAccountIsNotProvided", "Bitmap extension account is not provided"),
    6037: ("CannotFindNonZeroLiquidityBinArrayId", "Cannot find non-zero liquidity binArrayId"),
    6038: ("BinIdOutOfBound", "Bin id out of bound"),
    6039: ("InsufficientOutAmount", "Insufficient amount in for minimum out"),
    6040: ("InvalidPositionWidth", "Invalid position width"),
    6041: ("ExcessiveFeeUpdate", "Excessive fee update"),
    6042: ("PoolDisabled", "Pool disabled"),
    6043: ("InvalidPoolType", "Invalid pool type"),
    6044: ("ExceedMaxWhitelist", "Whitelist for wallet is full"),
    6045: ("InvalidIndex", "Invalid index"),
    6046: ("RewardNotEnded", "Reward not ended"),
    6047: ("MustWithdrawnIneligibleReward", "Must withdraw ineligible reward"),
    6048: ("UnauthorizedAddress", "Unauthorized address"),
    6049: ("OperatorsAreTheSame", "Cannot update because operators are the same"),
    6050: ("WithdrawToWrongTokenAccount", "Withdraw to wrong token account"),
    6051: ("WrongRentReceiver", "Wrong rent receiver"),
    6052: ("AlreadyPassActivationPoint", "Already activated"),
    6053: ("ExceedMaxSwappedAmount", "Swapped amount is exceeded max swapped amount"),
    6054: ("InvalidStrategyParameters", "Invalid strategy parameters"),
    6055: ("LiquidityLocked", "Liquidity locked"),
    6056: ("BinRangeIsNotEmpty", "Bin range is not empty"),
    6057: ("NotExactAmountOut", "Amount out is not matched with exact amount out"),
    6058: ("InvalidActivationType", "Invalid activation type"),
    6059: ("InvalidActivationDuration", "Invalid activation duration"),
    6060: ("MissingTokenAmountAsTokenLaunchProof", "Missing token amount as token launch owner proof"),
    6061: ("InvalidQuoteToken", "Quote token must be SOL or USDC"),
    6062: ("InvalidBinStep", "Invalid bin step"),
    6063: ("InvalidBaseFee", "Invalid base fee"),
    6064: ("InvalidPreActivationDuration", "Invalid pre-activation duration"),
    6065: ("AlreadyPassPreActivationSwapPoint", "Already pass pre-activation swap point"),
    6066: ("InvalidStatus", "Invalid status"),
    6067: ("ExceededMaxOracleLength", "Exceed max oracle length"),
    6068: ("InvalidMinimumLiquidity", "Invalid minimum liquidity"),
    6069: ("NotSupportMint", "Not support token_2022 mint extension"),
    6070: ("UnsupportedMintExtension", "Unsupported mint extension"),
    6071: ("UnsupportNativeMintToken2022", "Unsupported native mint token2022"),
    6072: ("UnmatchTokenMint", "Unmatch token mint"),
    6073: ("UnsupportedTokenMint", "Unsupported token mint"),
    6074: ("InsufficientRemainingAccounts", "Insufficient remaining accounts"),
    6075: ("InvalidRemainingAccountSlice", "Invalid remaining account slice"),
    6076: ("DuplicatedRemainingAccountTypes", "Duplicated remaining account types"),
    6077: ("MissingRemainingAccountForTransferHook", "Missing remaining account for transfer hook"),
    6078: (
        "NoTransferHookProgram",
        "Remaining account was passed for transfer hook but there's no hook program",
    ),
    6079: ("ZeroFundedAmount", "Zero funded amount"),
    6080: ("InvalidSide", "Invalid side"),
    6081: ("InvalidResizeLength", "Invalid resize length"),
    6082: ("NotSupportAtTheMoment", "Not support at the moment"),
    6083: ("InvalidRebalanceParameters", "Invalid rebalance parameters"),
    6084: ("InvalidRewardAccounts", "Invalid reward accounts"),
    6085: ("UndeterminedError", "Undetermined error"),
    6086: ("ReallocExceedMaxLengthPerInstruction", "Realloc exceed max length per instruction"),
    6087: ("InvalidBaseFeeMantissa", "Mantissa cannot more than two significant digits"),
    6088: ("InvalidPositionOwner", "Invalid position owner"),
    6089: ("InvalidPoolAddress", "Invalid pool address"),
    6090: ("InvalidTokenBadgeType", "Invalid token badge type"),
    6091: ("InvalidTransferHookAuthority", "Invalid transfer hook authority"),
    6092: ("AmountXIsNegative", "Amount x is negative"),
    6093: ("AmountYIsNegative", "Amount y is negative"),
    6094: ("InvalidPoolCreator", "Invalid pool creator"),
    6095: ("InvalidFunctionType", "Invalid function type"),
    6096: ("InvalidPermission", "Invalid permission"),
    6097: ("IncorrectATA", "Incorrect ATA"),
    6098: ("InvalidWithdrawProtocolFeeZapAccounts", "Invalid withdraw protocol fee zap accounts"),
    6099: ("MintRestrictedFromZap", "SOL,USDC protocol fee cannot be withdrawn via zap"),
    6100: ("CpiDisabled", "CPI disabled"),
    6101: ("MissingZapOutInstruction", "Missing zap out instruction"),
    6102: ("InvalidZapAccounts", "Invalid zap accounts"),
    6103: ("InvalidZapOutParameters", "Invalid zap out parameters"),
    6104: ("InsufficientInAmount", "Insufficient in amount"),
    6105: ("InvalidPlaceLimitOrderParameters", "Invalid place limit order parameters"),
    6106: ("InvalidLimitOrderOwner", "Invalid limit order owner"),
    6107: ("InvalidCancelLimitOrderParameters", "Invalid cancel limit order parameters"),
    6108: ("CannotFindLimitOrderByBinId", "Cannot find limit order by bin id"),
    6109: ("CancelNonEmptyLimitOrder", "Cannot cancel non-empty limit order"),
    6110: ("InvalidCollectFeeMode", "Invalid collect fee mode"),
}
# The bound of an order failed: ExceededAmountSlippageTolerance (min-out of swap2, max-in of
# swap_exact_out2), and an exact-out walk whose max-in runs out (InsufficientInAmount, NotExactAmountOut).
SLIPPAGE_ERROR_CODES: Final = frozenset({6003, 6057, 6104})
# Anchor's error when a swap runs out of bin arrays among its remaining accounts (the pool moved
# beyond those the swap carries).
ACCOUNT_NOT_ENOUGH_KEYS: Final = 3005
# the walk left the pair's own bitmap (its liquidity on that side ran out) without an extension
BITMAP_EXTENSION_NOT_PROVIDED: Final = 6036

_ERRORS_BY_NAME: Final[dict[str, tuple[int, str]]] = {
    name: (code, message) for code, (name, message) in {**ANCHOR_ERRORS, **PROGRAM_ERRORS}.items()
}


def error_name(code: int) -> str | None:
    """The name of the error ``Custom(code)`` this program (or Anchor inside it) returns, e.g.
    6003 -> ``"ExceededAmountSlippageTolerance"``; None for an unknown code."""
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
# account layouts

_STATIC = "HHHHIIiiHBBB3s"  # StaticParameters, 32 bytes
_VARIABLE = "IIi4sq8s"  # VariableParameters, 32 bytes
_REWARD = "32s32s32sQQQQQQ"  # RewardInfo, 144 bytes (u128 reward_rate as lo, hi)
_LB_PAIR = struct.Struct(
    "<8s"
    + _STATIC
    + _VARIABLE
    + "1s2sBiHBB2sBB"
    + "32s32s32s32s"  # token_x_mint, token_y_mint, reserve_x, reserve_y
    + "QQ"  # protocol_fee
    + "32s"  # _padding_1
    + _REWARD
    + _REWARD
    + "32s"  # oracle
    + "16Q"  # bin_array_bitmap
    + "q"  # last_updated_at
    + "32s"  # _padding_2
    + "32s32s"  # pre_activation_swap_address, base_key
    + "QQ"  # activation_point, pre_activation_duration
    + "8sQ"  # _padding_3, _padding_4
    + "32s"  # creator
    + "BBB21s"  # token_mint_x/y_program_flag, version, _reserved
)
LB_PAIR_SIZE: Final = _LB_PAIR.size  # 904
# Where the mints sit in an LbPair account (after the discriminator, both parameter blocks and the
# 16 bytes of seeds, ids and flags): the offsets `getProgramAccounts` memcmp filters use.
LB_PAIR_TOKEN_X_MINT_OFFSET: Final = struct.calcsize("<8s" + _STATIC + _VARIABLE + "1s2sBiHBB2sBB")  # 88
LB_PAIR_TOKEN_Y_MINT_OFFSET: Final = LB_PAIR_TOKEN_X_MINT_OFFSET + 32  # 120

_BIN = struct.Struct("<17QIB3s")  # 144 bytes, u128 fields as (lo, hi)
_BIN_ARRAY_HEADER = struct.Struct("<8sqB7s32s")  # disc, index, version, _padding_1, lb_pair
BIN_ARRAY_SIZE: Final = _BIN_ARRAY_HEADER.size + MAX_BIN_PER_ARRAY * _BIN.size  # 10136
_BITMAP_EXTENSION = struct.Struct("<8s32s96Q96Q")
_ORACLE_HEADER = struct.Struct("<8sQQQ")
_OBSERVATION_RAW = struct.Struct("<16sqq")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_ZERO32: Final = bytes(32)


def _pk(raw: bytes) -> Pubkey:
    return Pubkey.from_bytes(raw)


def _check_account(
    address: Pubkey, owner: Pubkey, program_id: Pubkey, data: bytes, what: str, disc: bytes, min_size: int
) -> None:
    if owner != program_id:
        raise LayoutError(address, what, f"owner {owner} is not the DLMM program {program_id}")
    if len(data) < min_size:
        raise LayoutError(address, what, f"size {len(data)} < {min_size}")
    if data[:8] != disc:
        raise LayoutError(address, what, f"discriminator {data[:8].hex()} != {disc.hex()}")


@dataclass(frozen=True, slots=True)
class StaticParameters:
    """``StaticParameters``: fee and volatility configuration set by the protocol."""

    base_factor: int
    filter_period: int
    decay_period: int
    reduction_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int
    min_bin_id: int
    max_bin_id: int
    protocol_share: int
    base_fee_power_factor: int
    function_type: int
    collect_fee_mode: int
    padding: bytes = bytes(3)


@dataclass(frozen=True, slots=True)
class VariableParameters:
    """``VariableParameters``: the volatility state updated by every swap."""

    volatility_accumulator: int
    volatility_reference: int
    index_reference: int
    last_update_timestamp: int
    padding: bytes = bytes(4)
    padding_1: bytes = bytes(8)


@dataclass(frozen=True, slots=True)
class RewardInfo:
    """``RewardInfo`` (farming rewards; only ``mint`` matters to swaps)."""

    mint: Pubkey
    vault: Pubkey
    funder: Pubkey
    reward_duration: int
    reward_duration_end: int
    reward_rate: int
    last_update_time: int
    cumulative_seconds_with_empty_liquidity_reward: int

    @classmethod
    def empty(cls) -> RewardInfo:
        zero = Pubkey.default()
        return cls(zero, zero, zero, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class LbPair:
    """``LbPair`` account (``bin_array_bitmap`` as one 1024-bit int, bit ``index + 512``)."""

    parameters: StaticParameters
    v_parameters: VariableParameters
    bump_seed: bytes
    bin_step_seed: bytes
    pair_type: int
    active_id: int
    bin_step: int
    status: int
    require_base_factor_seed: int
    base_factor_seed: bytes
    activation_type: int
    creator_pool_on_off_control: int
    token_x_mint: Pubkey
    token_y_mint: Pubkey
    reserve_x: Pubkey
    reserve_y: Pubkey
    protocol_fee_x: int
    protocol_fee_y: int
    padding_1: bytes
    reward_infos: tuple[RewardInfo, RewardInfo]
    oracle: Pubkey
    bin_array_bitmap: int
    last_updated_at: int
    padding_2: bytes
    pre_activation_swap_address: Pubkey
    base_key: Pubkey
    activation_point: int
    pre_activation_duration: int
    padding_3: bytes
    padding_4: int
    creator: Pubkey
    token_mint_x_program_flag: int
    token_mint_y_program_flag: int
    version: int
    reserved: bytes
    tail: bytes = b""

    def is_support_limit_order(self) -> bool:
        """``is_support_limit_order``: by function type (undetermined: no farming rewards)."""
        ft = self.parameters.function_type
        if ft == FUNCTION_TYPE_LIMIT_ORDER:
            return True
        if ft == FUNCTION_TYPE_UNDETERMINED:
            zero = Pubkey.default()
            return all(r.mint == zero for r in self.reward_infos)
        return False

    def fee_on_input(self, swap_for_y: bool) -> bool:
        """``fee_on_input``: fees are taken in the input token, or always in Y (``OnlyY``)."""
        if self.parameters.collect_fee_mode == COLLECT_FEE_MODE_ONLY_Y:
            return not swap_for_y
        return True

    def base_fee_rate(self) -> int:
        """``get_base_fee``: base_factor * bin_step * 10 * 10^base_fee_power_factor (1e9 units)."""
        p = self.parameters
        power: int = 10**p.base_fee_power_factor
        return p.base_factor * self.bin_step * 10 * power

    def variable_fee_rate(self, volatility_accumulator: int | None = None) -> int:
        """``compute_variable_fee``: ceil(vfc * (va * bin_step)^2 / 1e11)."""
        va = (
            self.v_parameters.volatility_accumulator
            if volatility_accumulator is None
            else volatility_accumulator
        )
        return _variable_fee(self.parameters.variable_fee_control, va, self.bin_step)

    def total_fee_rate(self) -> int:
        """``get_total_fee``: base + variable, capped at 10 % (``MAX_FEE_RATE``)."""
        return min(self.base_fee_rate() + self.variable_fee_rate(), MAX_FEE_RATE)


def _variable_fee(variable_fee_control: int, volatility_accumulator: int, bin_step: int) -> int:
    if variable_fee_control <= 0:
        return 0
    square = (volatility_accumulator * bin_step) ** 2
    return (variable_fee_control * square + 99_999_999_999) // 100_000_000_000


def decode_lb_pair(address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey) -> LbPair:
    """Decode an ``LbPair`` account, checking owner, size and discriminator."""
    _check_account(address, owner, program_id, data, "meteora_dlmm LbPair", DISC_LB_PAIR, LB_PAIR_SIZE)
    f = _LB_PAIR.unpack_from(data)
    sp = StaticParameters(*f[1:14])
    vp = VariableParameters(
        volatility_accumulator=f[14],
        volatility_reference=f[15],
        index_reference=f[16],
        padding=f[17],
        last_update_timestamp=f[18],
        padding_1=f[19],
    )
    i = 20
    (bump_seed, bin_step_seed, pair_type, active_id, bin_step, status, req_bf, bf_seed, act_type, on_off) = f[
        i : i + 10
    ]
    i += 10
    token_x_mint, token_y_mint, reserve_x, reserve_y = (_pk(b) for b in f[i : i + 4])
    i += 4
    protocol_fee_x, protocol_fee_y, padding_1 = f[i : i + 3]
    i += 3
    rewards = []
    for _ in range(2):
        r = f[i : i + 9]
        rewards.append(
            RewardInfo(_pk(r[0]), _pk(r[1]), _pk(r[2]), r[3], r[4], r[5] | (r[6] << 64), r[7], r[8])
        )
        i += 9
    oracle = _pk(f[i])
    i += 1
    bitmap = 0
    for k, limb in enumerate(f[i : i + 16]):
        bitmap |= limb << (64 * k)
    i += 16
    (last_updated_at, padding_2, pre_addr, base_key, act_point, pre_dur, padding_3, padding_4, creator) = f[
        i : i + 9
    ]
    i += 9
    flag_x, flag_y, version, reserved = f[i : i + 4]
    return LbPair(
        parameters=sp,
        v_parameters=vp,
        bump_seed=bump_seed,
        bin_step_seed=bin_step_seed,
        pair_type=pair_type,
        active_id=active_id,
        bin_step=bin_step,
        status=status,
        require_base_factor_seed=req_bf,
        base_factor_seed=bf_seed,
        activation_type=act_type,
        creator_pool_on_off_control=on_off,
        token_x_mint=token_x_mint,
        token_y_mint=token_y_mint,
        reserve_x=reserve_x,
        reserve_y=reserve_y,
        protocol_fee_x=protocol_fee_x,
        protocol_fee_y=protocol_fee_y,
        padding_1=padding_1,
        reward_infos=(rewards[0], rewards[1]),
        oracle=oracle,
        bin_array_bitmap=bitmap,
        last_updated_at=last_updated_at,
        padding_2=padding_2,
        pre_activation_swap_address=_pk(pre_addr),
        base_key=_pk(base_key),
        activation_point=act_point,
        pre_activation_duration=pre_dur,
        padding_3=padding_3,
        padding_4=padding_4,
        creator=_pk(creator),
        token_mint_x_program_flag=flag_x,
        token_mint_y_program_flag=flag_y,
        version=version,
        reserved=reserved,
        tail=bytes(data[LB_PAIR_SIZE:]),
    )


def encode_lb_pair(pair: LbPair) -> bytes:
    """Encode an ``LbPair`` account (discriminator included); inverse of :func:`decode_lb_pair`."""
    sp, vp = pair.parameters, pair.v_parameters
    rewards: list[object] = []
    for r in pair.reward_infos:
        rewards += [
            bytes(r.mint),
            bytes(r.vault),
            bytes(r.funder),
            r.reward_duration,
            r.reward_duration_end,
            r.reward_rate & _U64_MAX,
            r.reward_rate >> 64,
            r.last_update_time,
            r.cumulative_seconds_with_empty_liquidity_reward,
        ]
    bitmap = pair.bin_array_bitmap
    limbs = [(bitmap >> (64 * k)) & _U64_MAX for k in range(16)]
    return (
        _LB_PAIR.pack(
            DISC_LB_PAIR,
            sp.base_factor,
            sp.filter_period,
            sp.decay_period,
            sp.reduction_factor,
            sp.variable_fee_control,
            sp.max_volatility_accumulator,
            sp.min_bin_id,
            sp.max_bin_id,
            sp.protocol_share,
            sp.base_fee_power_factor,
            sp.function_type,
            sp.collect_fee_mode,
            sp.padding,
            vp.volatility_accumulator,
            vp.volatility_reference,
            vp.index_reference,
            vp.padding,
            vp.last_update_timestamp,
            vp.padding_1,
            pair.bump_seed,
            pair.bin_step_seed,
            pair.pair_type,
            pair.active_id,
            pair.bin_step,
            pair.status,
            pair.require_base_factor_seed,
            pair.base_factor_seed,
            pair.activation_type,
            pair.creator_pool_on_off_control,
            bytes(pair.token_x_mint),
            bytes(pair.token_y_mint),
            bytes(pair.reserve_x),
            bytes(pair.reserve_y),
            pair.protocol_fee_x,
            pair.protocol_fee_y,
            pair.padding_1,
            *rewards,
            bytes(pair.oracle),
            *limbs,
            pair.last_updated_at,
            pair.padding_2,
            bytes(pair.pre_activation_swap_address),
            bytes(pair.base_key),
            pair.activation_point,
            pair.pre_activation_duration,
            pair.padding_3,
            pair.padding_4,
            bytes(pair.creator),
            pair.token_mint_x_program_flag,
            pair.token_mint_y_program_flag,
            pair.version,
            pair.reserved,
        )
        + pair.tail
    )


@dataclass(frozen=True, slots=True)
class Bin:
    """``Bin`` (0.12 layout with limit-order fields).

    ``amount_x``/``amount_y`` are market-making liquidity; limit orders are held apart in
    ``open_order_amount`` (not yet touched), ``processed_order_remaining_amount`` (the batch being
    filled, of ``total_processing_order_amount``), all on the side ``limit_order_ask_side``
    (ask: orders sell X for Y; bid: orders sell Y for X).
    """

    amount_x: int = 0
    amount_y: int = 0
    price: int = 0
    liquidity_supply: int = 0
    fulfilled_order_amount_x: int = 0
    fulfilled_order_amount_y: int = 0
    limit_order_fee_ask_side: int = 0
    limit_order_fee_bid_side: int = 0
    fee_amount_x_per_token_stored: int = 0
    fee_amount_y_per_token_stored: int = 0
    open_order_amount: int = 0
    total_processing_order_amount: int = 0
    processed_order_remaining_amount: int = 0
    order_age: int = 0
    limit_order_ask_side: int = 0
    padding: bytes = bytes(3)

    def limit_order_amounts(self, swap_for_y: bool) -> tuple[int, int]:
        """``get_limit_order_amounts_by_direction``: (open, processed remaining) this swap can fill.

        X->Y swaps fill bid-side orders (they buy X), Y->X swaps fill ask-side orders.
        """
        if (self.limit_order_ask_side != 0) != swap_for_y:
            return self.open_order_amount, self.processed_order_remaining_amount
        return 0, 0

    def max_amount_out(self, swap_for_y: bool, support_limit_order: bool) -> int:
        """``get_max_amount_out_with_limit_orders`` (saturating like the program)."""
        mm = self.amount_y if swap_for_y else self.amount_x
        if not support_limit_order:
            return mm
        open_amount, processed = self.limit_order_amounts(swap_for_y)
        return min(mm + open_amount + processed, _U64_MAX)


def _decode_bin(f: tuple[int | bytes, ...]) -> Bin:
    v: tuple[int, ...] = f[:19]  # type: ignore[assignment]
    return Bin(
        v[0],
        v[1],
        v[2] | (v[3] << 64),
        v[4] | (v[5] << 64),
        v[6],
        v[7],
        v[8],
        v[9],
        v[10] | (v[11] << 64),
        v[12] | (v[13] << 64),
        v[14],
        v[15],
        v[16],
        v[17],
        v[18],
        f[19],  # type: ignore[arg-type]
    )


def _encode_bin(b: Bin) -> bytes:
    return _BIN.pack(
        b.amount_x,
        b.amount_y,
        b.price & _U64_MAX,
        b.price >> 64,
        b.liquidity_supply & _U64_MAX,
        b.liquidity_supply >> 64,
        b.fulfilled_order_amount_x,
        b.fulfilled_order_amount_y,
        b.limit_order_fee_ask_side,
        b.limit_order_fee_bid_side,
        b.fee_amount_x_per_token_stored & _U64_MAX,
        b.fee_amount_x_per_token_stored >> 64,
        b.fee_amount_y_per_token_stored & _U64_MAX,
        b.fee_amount_y_per_token_stored >> 64,
        b.open_order_amount,
        b.total_processing_order_amount,
        b.processed_order_remaining_amount,
        b.order_age,
        b.limit_order_ask_side,
        b.padding,
    )


@dataclass(frozen=True, slots=True)
class BinArray:
    """``BinArray``: 70 consecutive bins starting at ``index * 70``."""

    index: int
    version: int
    lb_pair: Pubkey
    bins: tuple[Bin, ...]
    padding: bytes = bytes(7)
    tail: bytes = b""

    @property
    def lower_bin_id(self) -> int:
        return self.index * MAX_BIN_PER_ARRAY

    @property
    def upper_bin_id(self) -> int:
        return self.index * MAX_BIN_PER_ARRAY + MAX_BIN_PER_ARRAY - 1

    def get_bin(self, bin_id: int) -> Bin:
        """The bin ``bin_id`` (must lie in this array)."""
        pos = bin_id - self.index * MAX_BIN_PER_ARRAY
        if not 0 <= pos < MAX_BIN_PER_ARRAY:
            raise IndexError(f"bin {bin_id} is not in bin array {self.index}")
        return self.bins[pos]


def decode_bin_array(address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey) -> BinArray:
    """Decode a ``BinArray`` account, checking owner, size and discriminator."""
    _check_account(address, owner, program_id, data, "meteora_dlmm BinArray", DISC_BIN_ARRAY, BIN_ARRAY_SIZE)
    _, index, version, padding, lb_pair = _BIN_ARRAY_HEADER.unpack_from(data)
    start = _BIN_ARRAY_HEADER.size
    bins = tuple(_decode_bin(f) for f in _BIN.iter_unpack(data[start:BIN_ARRAY_SIZE]))
    return BinArray(index, version, _pk(lb_pair), bins, padding, bytes(data[BIN_ARRAY_SIZE:]))


def encode_bin_array(array: BinArray) -> bytes:
    """Encode a ``BinArray`` account; inverse of :func:`decode_bin_array`."""
    if len(array.bins) != MAX_BIN_PER_ARRAY:
        raise ValueError(f"a bin array holds {MAX_BIN_PER_ARRAY} bins, not {len(array.bins)}")
    head = _BIN_ARRAY_HEADER.pack(
        DISC_BIN_ARRAY, array.index, array.version, array.padding, bytes(array.lb_pair)
    )
    return head + b"".join(_encode_bin(b) for b in array.bins) + array.tail


@dataclass(frozen=True, slots=True)
class BinArrayBitmapExtension:
    """``BinArrayBitmapExtension``: 12 x 512-bit bitmaps each side beyond the pair's own bitmap.

    ``positive[i]`` bit ``b`` marks bin array ``(i + 1) * 512 + b``; ``negative[i]`` bit ``b`` marks
    ``-((i + 1) * 512 + b) - 1``.
    """

    lb_pair: Pubkey
    positive: tuple[int, ...]
    negative: tuple[int, ...]
    tail: bytes = b""

    def bit(self, index: int) -> bool:
        offset, pos = _ext_offsets(index)
        words = self.negative if index < 0 else self.positive
        return bool((words[offset] >> pos) & 1)

    def next_bin_array_index_with_liquidity(self, swap_for_y: bool, start_index: int) -> tuple[int, bool]:
        """``BinArrayBitmapExtension::next_bin_array_index_with_liquidity``.

        From ``start_index`` (outside the pair's own bitmap) in the swap's direction: the nearest
        marked array, or where to continue in the pair's bitmap (``False``). Raises the program's
        ``CannotFindNonZeroLiquidityBinArrayId`` past the far end.
        """
        toward_zero = (start_index > 0) == swap_for_y
        found = self._iter(start_index, toward_zero)
        if found is not None:
            return found, True
        if toward_zero:
            return (BIN_ARRAY_BITMAP_SIZE - 1, False) if start_index > 0 else (-BIN_ARRAY_BITMAP_SIZE, False)
        raise _err("CannotFindNonZeroLiquidityBinArrayId")

    def _iter(self, start: int, toward_zero: bool) -> int | None:
        """``iter_bitmap``: nearest marked array from ``start`` (inclusive), on ``start``'s side."""
        negative = start < 0
        p0 = (-(start + 1) if negative else start) - BIN_ARRAY_BITMAP_SIZE
        if not 0 <= p0 < BIN_ARRAY_BITMAP_SIZE * EXTENSION_BINARRAY_BITMAP_SIZE:
            return None
        words = self.negative if negative else self.positive
        bits = 0
        for k, w in enumerate(words):
            bits |= w << (BIN_ARRAY_BITMAP_SIZE * k)
        if toward_zero:
            masked = bits & ((1 << (p0 + 1)) - 1)
            if not masked:
                return None
            p = masked.bit_length() - 1
        else:
            rest = bits >> p0
            if not rest:
                return None
            p = p0 + (rest & -rest).bit_length() - 1
        v = BIN_ARRAY_BITMAP_SIZE + p
        return -v - 1 if negative else v


def _ext_offsets(index: int) -> tuple[int, int]:
    if index > 0:
        return index // BIN_ARRAY_BITMAP_SIZE - 1, index % BIN_ARRAY_BITMAP_SIZE
    n = -(index + 1)
    return n // BIN_ARRAY_BITMAP_SIZE - 1, n % BIN_ARRAY_BITMAP_SIZE


def decode_bin_array_bitmap_extension(
    address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey
) -> BinArrayBitmapExtension:
    """Decode a ``BinArrayBitmapExtension`` account."""
    _check_account(
        address,
        owner,
        program_id,
        data,
        "meteora_dlmm BinArrayBitmapExtension",
        DISC_BITMAP_EXTENSION,
        _BITMAP_EXTENSION.size,
    )
    f = _BITMAP_EXTENSION.unpack_from(data)
    limbs = f[2:]

    def words(start: int) -> tuple[int, ...]:
        out = []
        for w in range(EXTENSION_BINARRAY_BITMAP_SIZE):
            v = 0
            for k in range(8):
                v |= limbs[start + w * 8 + k] << (64 * k)
            out.append(v)
        return tuple(out)

    return BinArrayBitmapExtension(_pk(f[1]), words(0), words(96), bytes(data[_BITMAP_EXTENSION.size :]))


def encode_bin_array_bitmap_extension(ext: BinArrayBitmapExtension) -> bytes:
    """Encode a ``BinArrayBitmapExtension`` account."""
    limbs: list[int] = []
    for words in (ext.positive, ext.negative):
        for w in words:
            limbs += [(w >> (64 * k)) & _U64_MAX for k in range(8)]
    return _BITMAP_EXTENSION.pack(DISC_BITMAP_EXTENSION, bytes(ext.lb_pair), *limbs) + ext.tail


@dataclass(frozen=True, slots=True)
class Observation:
    """One oracle sample (``cumulative_active_bin_id`` is an i128)."""

    cumulative_active_bin_id: int = 0
    created_at: int = 0
    last_updated_at: int = 0

    def initialized(self) -> bool:
        return self.created_at > 0 and self.last_updated_at > 0


@dataclass(frozen=True, slots=True)
class Oracle:
    """``Oracle`` header (``idx``, ``active_size``, ``length``) and its observations."""

    idx: int
    active_size: int
    length: int
    observations: tuple[Observation, ...]
    tail: bytes = b""


def decode_oracle(address: Pubkey, owner: Pubkey, data: bytes, program_id: Pubkey) -> Oracle:
    """Decode an ``Oracle`` account with its ``length`` observations."""
    what = "meteora_dlmm Oracle"
    _check_account(address, owner, program_id, data, what, DISC_ORACLE, _ORACLE_HEADER.size)
    _, idx, active_size, length = _ORACLE_HEADER.unpack_from(data)
    end = _ORACLE_HEADER.size + length * _OBSERVATION_RAW.size
    if len(data) < end:
        raise LayoutError(address, what, f"size {len(data)} < {end} for {length} observations")
    obs = tuple(
        Observation(int.from_bytes(c, "little", signed=True), created, updated)
        for c, created, updated in _OBSERVATION_RAW.iter_unpack(data[_ORACLE_HEADER.size : end])
    )
    return Oracle(idx, active_size, length, obs, bytes(data[end:]))


def encode_oracle(oracle: Oracle) -> bytes:
    """Encode an ``Oracle`` account; inverse of :func:`decode_oracle`."""
    head = _ORACLE_HEADER.pack(DISC_ORACLE, oracle.idx, oracle.active_size, oracle.length)
    body = b"".join(
        _OBSERVATION_RAW.pack(
            o.cumulative_active_bin_id.to_bytes(16, "little", signed=True), o.created_at, o.last_updated_at
        )
        for o in oracle.observations
    )
    return head + body + oracle.tail


def update_oracle(
    oracle: Oracle, active_id: int, now_unix_ts: int, sample_lifetime: int = SAMPLE_LIFETIME
) -> Oracle:
    """``DynamicOracle::update``: accumulate ``active_id`` into the latest sample.

    A new sample is started once the latest is ``sample_lifetime`` seconds old.
    """
    idx, active_size, length = oracle.idx, oracle.active_size, oracle.length
    obs = list(oracle.observations)
    if length == 0:
        return oracle
    if active_size == 0:
        active_size += 1
    latest = obs[idx]
    if latest.initialized():
        cumulative = latest.cumulative_active_bin_id + active_id * (now_unix_ts - latest.last_updated_at)
        if now_unix_ts >= latest.created_at + sample_lifetime:
            idx = (idx + 1) % length
            if not obs[idx].initialized():
                active_size = min(active_size + 1, length)
            latest = Observation()
    else:
        cumulative = active_id
    created = latest.created_at if latest.initialized() else now_unix_ts
    obs[idx] = Observation(cumulative, created, now_unix_ts)
    return dataclasses.replace(oracle, idx=idx, active_size=active_size, observations=tuple(obs))


# --------------------------------------------------------------------------------------------
# PDAs and bin array bookkeeping


@lru_cache(maxsize=65536)
def bin_array_pda(program_id: Pubkey, lb_pair: Pubkey, index: int) -> Pubkey:
    """``derive_bin_array_pda``: seeds [b"bin_array", lb_pair, index as i64 LE]."""
    return Pubkey.find_program_address([b"bin_array", bytes(lb_pair), _I64.pack(index)], program_id)[0]


@lru_cache(maxsize=1024)
def bin_array_bitmap_extension_pda(program_id: Pubkey, lb_pair: Pubkey) -> Pubkey:
    """``derive_bin_array_bitmap_extension``: seeds [b"bitmap", lb_pair]."""
    return Pubkey.find_program_address([b"bitmap", bytes(lb_pair)], program_id)[0]


@lru_cache(maxsize=1024)
def oracle_pda(program_id: Pubkey, lb_pair: Pubkey) -> Pubkey:
    """``derive_oracle_pda``: seeds [b"oracle", lb_pair]."""
    return Pubkey.find_program_address([b"oracle", bytes(lb_pair)], program_id)[0]


@lru_cache(maxsize=64)
def event_authority_pda(program_id: Pubkey) -> Pubkey:
    """Anchor ``#[event_cpi]`` authority: seeds [b"__event_authority"]."""
    return Pubkey.find_program_address([b"__event_authority"], program_id)[0]


def bin_array_index(bin_id: int) -> int:
    """``bin_id_to_bin_array_index``: floor(bin_id / 70)."""
    return bin_id // MAX_BIN_PER_ARRAY


def bin_id_range(index: int) -> tuple[int, int]:
    """``get_bin_array_lower_upper_bin_id``: first and last bin id of bin array ``index``."""
    lower = index * MAX_BIN_PER_ARRAY
    return lower, lower + MAX_BIN_PER_ARRAY - 1


def _next_internal(bitmap: int, swap_for_y: bool, start_index: int) -> tuple[int, bool]:
    """``next_bin_array_index_with_liquidity_internal`` on the pair's 1024-bit bitmap."""
    offset = start_index + BIN_ARRAY_BITMAP_SIZE
    if swap_for_y:
        masked = bitmap & ((1 << (offset + 1)) - 1) if offset >= 0 else 0
        if not masked:
            return -BIN_ARRAY_BITMAP_SIZE - 1, False
        return masked.bit_length() - 1 - BIN_ARRAY_BITMAP_SIZE, True
    rest = bitmap >> offset if offset >= 0 else bitmap
    if not rest:
        return BIN_ARRAY_BITMAP_SIZE, False
    low = (rest & -rest).bit_length() - 1
    return start_index + low, True


def _is_overflow_default(index: int) -> bool:
    return index < -BIN_ARRAY_BITMAP_SIZE or index > BIN_ARRAY_BITMAP_SIZE - 1


def _next_array_with_liquidity(
    bitmap: int, ext: BinArrayBitmapExtension | None, swap_for_y: bool, active_id: int
) -> int:
    """``LbPair::next_bin_array_index_with_liquidity``: the array the swap continues in.

    Raises ``BitmapExtensionAccountIsNotProvided`` when the search leaves the pair's own bitmap
    and no extension was given, as the program does.
    """
    start = bin_array_index(active_id)

    def from_ext(index: int) -> tuple[int, bool]:
        if ext is None:
            raise _err("BitmapExtensionAccountIsNotProvided")
        return ext.next_bin_array_index_with_liquidity(swap_for_y, index)

    def internal_then_ext(index: int) -> int:
        found, ok = _next_internal(bitmap, swap_for_y, index)
        if ok:
            return found
        found, _ = from_ext(found)
        return found

    if _is_overflow_default(start):
        found, ok = from_ext(start)
        if ok:
            return found
        return internal_then_ext(found)
    return internal_then_ext(start)


def bin_arrays_for_swap(
    pair: LbPair, swap_for_y: bool, count: int, bitmap_extension: BinArrayBitmapExtension | None = None
) -> list[int]:
    """``get_bin_array_pubkeys_for_swap``: indexes of the next ``count`` arrays holding liquidity.

    Starts at the active bin's array and follows the pair's bitmap (and the extension, if given)
    in the swap's direction; returns fewer when the bitmaps run out.
    """
    out: list[int] = []
    start = bin_array_index(pair.active_id)
    step = -1 if swap_for_y else 1
    bitmap = pair.bin_array_bitmap
    while len(out) < count:
        if _is_overflow_default(start):
            if bitmap_extension is None:
                break
            try:
                found, ok = bitmap_extension.next_bin_array_index_with_liquidity(swap_for_y, start)
            except QuoteError:
                break
        else:
            found, ok = _next_internal(bitmap, swap_for_y, start)
        if ok:
            out.append(found)
            start = found + step
        else:
            start = found
    return out


def bin_arrays_around_active(
    pair: LbPair,
    swap_for_y: bool,
    ahead: int,
    behind: int,
    bitmap_extension: BinArrayBitmapExtension | None = None,
) -> tuple[list[int], list[int]]:
    """The bin arrays a swap built from this (possibly stale) pair state may need if the pool moves
    before it lands: ``ahead`` arrays with liquidity from the active bin's in the swap's direction
    (``bin_arrays_for_swap``) and ``behind`` more on the other side, nearest first.

    The program takes bin arrays from the remaining accounts in order, skipping others, and its walk
    moves one way from wherever the active bin is when the swap runs: so a swap lists the chosen
    arrays sorted in the swap's direction (``swap_order``), the ones behind first.
    """
    forward = bin_arrays_for_swap(pair, swap_for_y, ahead, bitmap_extension)
    backward = bin_arrays_for_swap(pair, not swap_for_y, behind + 1, bitmap_extension)
    return forward, [i for i in backward if i not in forward][:behind]


def swap_order(indexes: Sequence[int], swap_for_y: bool) -> list[int]:
    """Bin array indexes in the order a swap's walk visits them (descending when selling X)."""
    return sorted(set(indexes), reverse=swap_for_y)


# --------------------------------------------------------------------------------------------
# price math (``u64x64_math::pow``, ``price_math::get_price_from_id``)


def pow_q64(base: int, exp: int) -> int | None:
    """``u64x64_math::pow``: ``base ** exp`` in Q64.64, bit-exact, ``None`` on overflow.

    Inverts a base >= 1 first (u128::MAX / base) so every squaring stays below 2^128, then walks
    the 19 exponent bits, truncating each product by 64 bits, and inverts back at the end.
    """
    invert = exp < 0
    if exp == 0:
        return ONE_Q64
    e = -exp if invert else exp
    if e >= _MAX_EXPONENTIAL:
        return None
    squared = base
    result = ONE_Q64
    if squared >= result:
        squared = _U128_MAX // squared
        invert = not invert
    bit = 1
    while bit <= 0x40000:
        if e & bit:
            prod = result * squared
            if prod >= _U128_LIMIT:
                return None
            result = prod >> SCALE_OFFSET
        if bit == 0x40000:
            break
        prod = squared * squared
        if prod >= _U128_LIMIT:
            return None
        squared = prod >> SCALE_OFFSET
        bit <<= 1
    if result == 0:
        return None
    if invert:
        result = _U128_MAX // result
    return result


@lru_cache(maxsize=262144)
def get_price_from_id(bin_id: int, bin_step: int) -> int:
    """``get_price_from_id``: (1 + bin_step / 10_000) ** bin_id in Q64.64, as the program rounds it.

    Raises ``MathOverflow`` where the program would.
    """
    bps = (bin_step << SCALE_OFFSET) // BASIS_POINT_MAX
    price = pow_q64(ONE_Q64 + bps, bin_id)
    if price is None:
        raise _err("MathOverflow")
    return price


def _amount_in_for_out(amount_out: int, price: int, swap_for_y: bool) -> int:
    """``Bin::get_amount_in`` rounded up: input needed for ``amount_out`` at ``price``."""
    if swap_for_y:  # (out << 64) / price
        return -(-(amount_out << SCALE_OFFSET) // price)
    return -(-(amount_out * price) >> SCALE_OFFSET)


def _amount_out_for_in(amount_in: int, price: int, swap_for_y: bool) -> int:
    """``Bin::get_amount_out`` rounded down: output for ``amount_in`` at ``price``."""
    if swap_for_y:
        return (amount_in * price) >> SCALE_OFFSET
    return (amount_in << SCALE_OFFSET) // price


# --------------------------------------------------------------------------------------------
# swap


@dataclass(frozen=True, slots=True)
class BinFill:
    """What one bin contributed to a swap.

    ``amount_in`` is what the swapper paid into this bin including the trading fee (when the fee
    is on the input), ``amount_out`` what the bin gave out before any fee on the output;
    ``mm_*`` is the market-making share and ``lo_*`` the limit-order share of the fill.
    """

    bin_id: int
    price: int
    fee_rate: int
    amount_in: int
    amount_out: int
    fee: int
    protocol_fee: int
    mm_amount_in: int
    mm_amount_out: int
    lo_amount_in: int
    lo_amount_out: int
    limit_order_fee: int


@dataclass(frozen=True, slots=True)
class DlmmSwapResult:
    """A swap as the program executes it, with the state it leaves behind.

    Token flows: the user sends ``amount_in``; ``amount_in_after_transfer_fee`` reaches the input
    reserve (the rest is a Token-2022 withheld fee); ``amount_out_before_transfer_fee`` leaves the
    output reserve (the program's event ``amount_out``) and the user receives ``amount_out``.
    ``fee``/``protocol_fee`` are the trading fee and its protocol part in the fee token (the input
    token, or Y for ``collect_fee_mode`` OnlyY), ``fee_rate`` the pair's total fee rate after the
    swap (event ``fee_bps``, 1e9 = 100 %). ``lb_pair`` and ``bin_arrays`` (index -> array, only the
    arrays the swap touched) are new objects; the inputs are not mutated. To apply the swap as the
    program does, also move the reserves by :attr:`reserve_deltas` and update the oracle with
    ``update_oracle(oracle, start_bin_id, unix_ts)``.
    """

    swap_for_y: bool
    amount_in: int
    amount_in_after_transfer_fee: int
    amount_out_before_transfer_fee: int
    amount_out: int
    input_transfer_fee: int
    output_transfer_fee: int
    fee: int
    protocol_fee: int
    host_fee: int
    fee_on_input: bool
    fee_rate: int
    start_bin_id: int
    active_id_after: int
    bins: tuple[BinFill, ...]
    lb_pair: LbPair
    bin_arrays: dict[int, BinArray]

    @property
    def bins_crossed(self) -> int:
        return abs(self.active_id_after - self.start_bin_id)

    @property
    def reserve_deltas(self) -> tuple[int, int]:
        """Net change of (reserve_x, reserve_y) token balances.

        The input reserve gains what arrives after the input transfer fee, the output reserve
        loses what it sends; a host fee leaves from the fee token's side.
        """
        d_in = self.amount_in_after_transfer_fee - (self.host_fee if self.fee_on_input else 0)
        d_out = -self.amount_out_before_transfer_fee - (0 if self.fee_on_input else self.host_fee)
        return (d_in, d_out) if self.swap_for_y else (d_out, d_in)


def _check_swap_allowed(pair: LbPair, slot: int, unix_ts: int) -> None:
    """The program's swap gate: the pair is enabled and, for Permission and
    CustomizablePermissionless pairs, past its activation point (slot or timestamp).

    ``pre_activation_swap_address`` privileges are not modelled (quotes are for anyone).
    """
    if pair.status != PAIR_STATUS_ENABLED:
        raise _err("PoolDisabled")
    if pair.pair_type in (PAIR_TYPE_PERMISSION, PAIR_TYPE_CUSTOMIZABLE_PERMISSIONLESS):
        current = slot if pair.activation_type == ACTIVATION_TYPE_SLOT else unix_ts
        if current < pair.activation_point:
            raise _err("PoolDisabled")


class _Walk:
    """Mutable state of one swap walk; produces the new pair and bin arrays at the end."""

    __slots__ = (
        "active_id",
        "arrays",
        "base_fee",
        "bin_step",
        "bitmap_extension",
        "changed",
        "ext",
        "fee_on_input",
        "fills",
        "host_fee",
        "host_fee_enabled",
        "index_reference",
        "max_va",
        "order",
        "order_pos",
        "pair",
        "protocol_fee",
        "protocol_share",
        "support_lo",
        "swap_for_y",
        "total_fee",
        "va",
        "vfc",
        "vr",
    )

    def __init__(
        self,
        pair: LbPair,
        bin_arrays: Mapping[int, BinArray],
        swap_for_y: bool,
        unix_ts: int,
        bitmap_extension: BinArrayBitmapExtension | None,
        bin_array_order: Sequence[int] | None = None,
    ) -> None:
        p = pair.parameters
        self.order = bin_array_order
        self.order_pos = 0
        v = pair.v_parameters
        self.pair = pair
        self.arrays = bin_arrays
        self.ext = bitmap_extension
        self.swap_for_y = swap_for_y
        self.active_id = pair.active_id
        self.bin_step = pair.bin_step
        self.base_fee = pair.base_fee_rate()
        self.vfc = p.variable_fee_control
        self.max_va = p.max_volatility_accumulator
        self.protocol_share = p.protocol_share
        self.support_lo = pair.is_support_limit_order()
        self.fee_on_input = pair.fee_on_input(swap_for_y)
        # update_references
        va, vr, ir = v.volatility_accumulator, v.volatility_reference, v.index_reference
        elapsed = unix_ts - v.last_update_timestamp
        if elapsed >= p.filter_period:
            ir = pair.active_id
            vr = va * p.reduction_factor // BASIS_POINT_MAX if elapsed < p.decay_period else 0
        self.va, self.vr, self.index_reference = va, vr, ir
        self.changed: dict[int, Bin] = {}
        self.fills: list[BinFill] = []
        self.total_fee = 0
        self.protocol_fee = 0
        self.host_fee = 0
        self.host_fee_enabled = False

    # -- helpers -------------------------------------------------------------------------

    def fee_rate(self) -> int:
        rate = self.base_fee + _variable_fee(self.vfc, self.va, self.bin_step)
        return rate if rate < MAX_FEE_RATE else MAX_FEE_RATE

    def update_volatility_accumulator(self) -> None:
        va = self.vr + abs(self.index_reference - self.active_id) * BASIS_POINT_MAX
        self.va = va if va < self.max_va else self.max_va

    def current_array(self) -> BinArray:
        """Find the array the walk continues in (shifting the active bin over empty arrays)."""
        index = _next_array_with_liquidity(
            self.pair.bin_array_bitmap, self.ext, self.swap_for_y, self.active_id
        )
        if self.order is not None:
            # the program takes bin arrays from its remaining accounts in order, skipping others
            pos = self.order_pos
            order = self.order
            while pos < len(order) and order[pos] != index:
                pos += 1
            if pos == len(order):
                raise _err("AccountNotEnoughKeys")
            self.order_pos = pos + 1
        array = self.arrays.get(index)
        if array is None:
            raise _err("AccountNotEnoughKeys")
        if index != bin_array_index(self.active_id):
            lower, upper = bin_id_range(index)
            self.active_id = upper if self.swap_for_y else lower
        return array

    def get_bin(self, array: BinArray, bin_id: int) -> Bin:
        b = self.changed.get(bin_id)
        return b if b is not None else array.bins[bin_id - array.index * MAX_BIN_PER_ARRAY]

    def advance(self) -> None:
        nxt = self.active_id - 1 if self.swap_for_y else self.active_id + 1
        if nxt < MIN_BIN_ID or nxt > MAX_BIN_ID:
            raise _err("PairInsufficientLiquidity")
        self.active_id = nxt

    # -- one bin ---------------------------------------------------------------------------

    def swap_at_bin(self, b: Bin, bin_id: int, amount: int, rate: int) -> tuple[int, int]:
        """``swap_exact_in_quote_at_bin`` plus the bin's state change.

        Returns (input consumed including fee, output to the user after an output-side fee).
        """
        swap_for_y = self.swap_for_y
        price = b.price or get_price_from_id(bin_id, self.bin_step)
        fee_on_input = self.fee_on_input
        if fee_on_input:
            fee = -(-(amount * rate) // FEE_PRECISION)
            excluded = amount - fee
        else:
            fee = 0
            excluded = amount

        # market making first, then the processed limit-order batch, then open orders
        mm_amount = b.amount_y if swap_for_y else b.amount_x
        left = excluded
        mm_in = mm_out = proc_in = proc_out = open_in = open_out = 0
        if mm_amount:
            max_in = _amount_in_for_out(mm_amount, price, swap_for_y)
            if left >= max_in:
                mm_in, mm_out, left = max_in, mm_amount, left - max_in
            else:
                mm_in, mm_out, left = left, _amount_out_for_in(left, price, swap_for_y), 0
        open_amount = processed = 0
        if self.support_lo and left:
            open_amount, processed = b.limit_order_amounts(swap_for_y)
            if processed:
                max_in = _amount_in_for_out(processed, price, swap_for_y)
                if left >= max_in:
                    proc_in, proc_out, left = max_in, processed, left - max_in
                else:
                    proc_in, proc_out, left = left, _amount_out_for_in(left, price, swap_for_y), 0
            if left and open_amount:
                max_in = _amount_in_for_out(open_amount, price, swap_for_y)
                if left >= max_in:
                    open_in, open_out, left = max_in, open_amount, left - max_in
                else:
                    open_in, open_out, left = left, _amount_out_for_in(left, price, swap_for_y), 0
        filled_in = mm_in + proc_in + open_in
        out = mm_out + proc_out + open_out
        if left:
            # the bin is drained: charge the fee on what it actually took
            if fee_on_input:
                fee = -(-(filled_in * rate) // (FEE_PRECISION - rate))
                included = filled_in + fee
            else:
                included = filled_in
        else:
            included = amount
        user_out = out
        if not fee_on_input:
            fee = -(-(out * rate) // FEE_PRECISION)
            user_out = out - fee

        # split_fee: market makers' share of the fee by input, limit orders share the rest
        lo_fee = protocol = 0
        mm_fee = 0
        if filled_in and fee:
            mm_fee = -(-(fee * mm_in) // filled_in)
            total_lo_fee = fee - mm_fee
            lo_fee = total_lo_fee * LIMIT_ORDER_FEE_SHARE // BASIS_POINT_MAX
            protocol = (total_lo_fee - lo_fee) + mm_fee * self.protocol_share // BASIS_POINT_MAX
        lp_fee = mm_fee - mm_fee * self.protocol_share // BASIS_POINT_MAX if filled_in and fee else 0

        # state change of the bin (built field by field: this is the hot path)
        amount_x, amount_y = b.amount_x, b.amount_y
        if swap_for_y:
            amount_x += mm_in
            amount_y -= mm_out
        else:
            amount_y += mm_in
            amount_x -= mm_out
        fee_x_per_token, fee_y_per_token = b.fee_amount_x_per_token_stored, b.fee_amount_y_per_token_stored
        supply_q = b.liquidity_supply >> SCALE_OFFSET
        if lp_fee and supply_q:
            if fee_on_input and swap_for_y:
                fee_x_per_token += (lp_fee << SCALE_OFFSET) // supply_q
            else:
                fee_y_per_token += (lp_fee << SCALE_OFFSET) // supply_q
        lo_out = proc_out + open_out
        open_left, processing, remaining, age = (
            b.open_order_amount,
            b.total_processing_order_amount,
            b.processed_order_remaining_amount,
            b.order_age,
        )
        filled_x, filled_y = b.fulfilled_order_amount_x, b.fulfilled_order_amount_y
        lo_fee_ask, lo_fee_bid = b.limit_order_fee_ask_side, b.limit_order_fee_bid_side
        if lo_out or proc_in or open_in:
            remaining = processed - proc_out
            if open_in:
                # the open batch becomes the batch being processed
                processing, open_left, age = open_amount, 0, age + 1
                remaining = open_amount - open_out
            if b.limit_order_ask_side:
                filled_x += lo_out
                lo_fee_ask += lo_fee
            else:
                filled_y += lo_out
                lo_fee_bid += lo_fee
        self.changed[bin_id] = Bin(
            amount_x,
            amount_y,
            price,
            b.liquidity_supply,
            filled_x,
            filled_y,
            lo_fee_ask,
            lo_fee_bid,
            fee_x_per_token,
            fee_y_per_token,
            open_left,
            processing,
            remaining,
            age,
            b.limit_order_ask_side,
            b.padding,
        )

        if self.host_fee_enabled:
            # the host's cut: HOST_FEE_BPS of the protocol share of the market makers' fee
            # and, separately, of the protocol share of the limit orders' whole fee
            share = self.protocol_share
            host = (mm_fee * share // BASIS_POINT_MAX) * HOST_FEE_BPS // BASIS_POINT_MAX + (
                (fee - mm_fee) * share // BASIS_POINT_MAX
            ) * HOST_FEE_BPS // BASIS_POINT_MAX
            self.host_fee += host
            protocol -= host
        self.total_fee += fee
        self.protocol_fee += protocol
        self.fills.append(
            BinFill(
                bin_id=bin_id,
                price=price,
                fee_rate=rate,
                amount_in=included,
                amount_out=out,
                fee=fee,
                protocol_fee=protocol,
                mm_amount_in=mm_in,
                mm_amount_out=mm_out,
                lo_amount_in=proc_in + open_in,
                lo_amount_out=lo_out,
                limit_order_fee=lo_fee,
            )
        )
        return included, user_out

    # -- the result -----------------------------------------------------------------------

    def new_state(self, unix_ts: int) -> tuple[LbPair, dict[int, BinArray]]:
        pair = self.pair
        protocol = self.protocol_fee
        fee_in_x = self.swap_for_y if self.fee_on_input else False
        new_pair = dataclasses.replace(
            pair,
            active_id=self.active_id,
            v_parameters=dataclasses.replace(
                pair.v_parameters,
                volatility_accumulator=self.va,
                volatility_reference=self.vr,
                index_reference=self.index_reference,
                # the program stamps the time only when the swap moved the active bin
                last_update_timestamp=unix_ts
                if self.active_id != pair.active_id
                else pair.v_parameters.last_update_timestamp,
            ),
            protocol_fee_x=pair.protocol_fee_x + (protocol if fee_in_x else 0),
            protocol_fee_y=pair.protocol_fee_y + (0 if fee_in_x else protocol),
        )
        by_array: dict[int, dict[int, Bin]] = {}
        for bin_id, b in self.changed.items():
            by_array.setdefault(bin_array_index(bin_id), {})[bin_id] = b
        arrays: dict[int, BinArray] = {}
        for index, changed in by_array.items():
            old = self.arrays[index]
            bins = list(old.bins)
            base = index * MAX_BIN_PER_ARRAY
            for bin_id, b in changed.items():
                bins[bin_id - base] = b
            arrays[index] = dataclasses.replace(old, bins=tuple(bins))
        return new_pair, arrays


def _fee_token_is_x(pair: LbPair, swap_for_y: bool) -> bool:
    return swap_for_y if pair.fee_on_input(swap_for_y) else False


def quote_exact_in(
    pair: LbPair,
    bin_arrays: Mapping[int, BinArray],
    amount_in: int,
    swap_for_y: bool,
    slot: int,
    unix_ts: int,
    epoch: int,
    mint_x_fee: TransferFeeConfig | None = None,
    mint_y_fee: TransferFeeConfig | None = None,
    *,
    min_amount_out: int = 0,
    bitmap_extension: BinArrayBitmapExtension | None = None,
    host_fee: bool = False,
    bin_array_order: Sequence[int] | None = None,
) -> DlmmSwapResult:
    """``swap2`` (exact in): the amount the user receives and the state the swap leaves.

    Mirrors the program's order of checks: pair enabled and activated (``PoolDisabled``), input
    transfer fee taken first, bin walk (``BitmapExtensionAccountIsNotProvided`` when liquidity runs
    out of the pair's bitmap without an extension, ``BinArrayNotFound`` when a needed array is not
    in ``bin_arrays``), zero output (``InsufficientOutAmount``), then ``min_amount_out`` against
    what the user receives (``ExceededAmountSlippageTolerance``). ``host_fee``: a host fee account
    is passed, which takes ``HOST_FEE_BPS`` of the protocol fee.
    """
    _check_swap_allowed(pair, slot, unix_ts)
    in_fee, out_fee = (mint_x_fee, mint_y_fee) if swap_for_y else (mint_y_fee, mint_x_fee)
    amount_after_fee = transfer_fee_excluded_amount(in_fee, epoch, amount_in)
    walk = _Walk(pair, bin_arrays, swap_for_y, unix_ts, bitmap_extension, bin_array_order)
    walk.host_fee_enabled = host_fee
    start = pair.active_id
    amount_left = amount_after_fee
    total_out = 0
    swap_for_y_ = swap_for_y
    support_lo = walk.support_lo
    while amount_left > 0:
        array = walk.current_array()
        lower = array.index * MAX_BIN_PER_ARRAY
        upper = lower + MAX_BIN_PER_ARRAY - 1
        while amount_left > 0 and lower <= walk.active_id <= upper:
            bin_id = walk.active_id
            b = walk.get_bin(array, bin_id)
            if b.max_amount_out(swap_for_y_, support_lo) > 0:
                walk.update_volatility_accumulator()
                used, out = walk.swap_at_bin(b, bin_id, amount_left, walk.fee_rate())
                amount_left -= used
                total_out += out
            if amount_left > 0:
                walk.advance()
    received = transfer_fee_excluded_amount(out_fee, epoch, total_out)
    if received == 0:
        raise _err("InsufficientOutAmount")
    if received < min_amount_out:
        raise _err("ExceededAmountSlippageTolerance")
    new_pair, new_arrays = walk.new_state(unix_ts)
    return DlmmSwapResult(
        swap_for_y=swap_for_y,
        amount_in=amount_in,
        amount_in_after_transfer_fee=amount_after_fee,
        amount_out_before_transfer_fee=total_out,
        amount_out=received,
        input_transfer_fee=amount_in - amount_after_fee,
        output_transfer_fee=total_out - received,
        fee=walk.total_fee,
        protocol_fee=walk.protocol_fee,
        host_fee=walk.host_fee,
        fee_on_input=walk.fee_on_input,
        fee_rate=walk.fee_rate(),
        start_bin_id=start,
        active_id_after=walk.active_id,
        bins=tuple(walk.fills),
        lb_pair=new_pair,
        bin_arrays=new_arrays,
    )


def _excluded_fee_amount_in(b: Bin, price: int, swap_for_y: bool, amount_out: int) -> int:
    """``get_excluded_fee_amount_in``: input (before fee) buying ``amount_out`` from the bin's layers."""
    mm = b.amount_y if swap_for_y else b.amount_x
    open_amount, processed = b.limit_order_amounts(swap_for_y)
    take = min(amount_out, mm)
    total = _amount_in_for_out(take, price, swap_for_y)
    remaining = amount_out - take
    if remaining:
        take = min(remaining, processed)
        total += _amount_in_for_out(take, price, swap_for_y)
        remaining -= take
        if remaining:
            total += _amount_in_for_out(min(remaining, open_amount), price, swap_for_y)
    return total


def quote_exact_out(
    pair: LbPair,
    bin_arrays: Mapping[int, BinArray],
    amount_out: int,
    swap_for_y: bool,
    slot: int,
    unix_ts: int,
    epoch: int,
    mint_x_fee: TransferFeeConfig | None = None,
    mint_y_fee: TransferFeeConfig | None = None,
    *,
    max_amount_in: int = _U64_MAX,
    bitmap_extension: BinArrayBitmapExtension | None = None,
    host_fee: bool = False,
    bin_array_order: Sequence[int] | None = None,
) -> DlmmSwapResult:
    """``swap_exact_out2``: the input needed for the user to receive exactly ``amount_out``.

    Mirrors ``quote_exact_out`` / ``swap_exact_out_quote_at_bin``: the output is grossed up for
    the output transfer fee, each bin is bought with the smallest input that yields the remaining
    output (the whole bin when it holds less), and the input is grossed up for the input transfer
    fee. ``max_amount_in`` bounds the walk bin by bin (``InsufficientInAmount`` once a bin needs
    more than is left of it after the input transfer fee); when the budget runs out the swap
    fails with ``InsufficientOutAmount`` (nothing received) or ``NotExactAmountOut``; finally
    what the user sends is checked against it (``ExceededAmountSlippageTolerance``).
    """
    _check_swap_allowed(pair, slot, unix_ts)
    in_fee, out_fee = (mint_x_fee, mint_y_fee) if swap_for_y else (mint_y_fee, mint_x_fee)
    gross_out = transfer_fee_included_amount(out_fee, epoch, amount_out)
    if gross_out is None:
        raise _err("MathOverflow")
    walk = _Walk(pair, bin_arrays, swap_for_y, unix_ts, bitmap_extension, bin_array_order)
    walk.host_fee_enabled = host_fee
    start = pair.active_id
    out_left = gross_out
    in_left = transfer_fee_excluded_amount(in_fee, epoch, max_amount_in)
    total_in = 0
    total_out = 0
    fee_on_input = walk.fee_on_input
    support_lo = walk.support_lo
    while out_left > 0 and in_left > 0:
        array = walk.current_array()
        lower = array.index * MAX_BIN_PER_ARRAY
        upper = lower + MAX_BIN_PER_ARRAY - 1
        while out_left > 0 and lower <= walk.active_id <= upper:
            bin_id = walk.active_id
            b = walk.get_bin(array, bin_id)
            max_out = b.max_amount_out(swap_for_y, support_lo)
            if max_out > 0:
                walk.update_volatility_accumulator()
                rate = walk.fee_rate()
                wanted = out_left
                if not fee_on_input:
                    wanted = out_left + -(-(out_left * rate) // (FEE_PRECISION - rate))
                if wanted >= max_out:
                    # the bin cannot cover the rest: spend what is left of the budget on it
                    used, out = walk.swap_at_bin(b, bin_id, in_left, rate)
                else:
                    price = b.price or get_price_from_id(bin_id, walk.bin_step)
                    needed = _excluded_fee_amount_in(b, price, swap_for_y, wanted)
                    if fee_on_input:
                        needed += -(-(needed * rate) // (FEE_PRECISION - rate))
                    if needed > in_left:
                        raise _err("InsufficientInAmount")
                    used, out = walk.swap_at_bin(b, bin_id, needed, rate)
                    if out > out_left:
                        # rounding surplus of the last bin: the user gets what was asked for; a
                        # surplus in the fee token (fee on output) is booked as protocol fee
                        if not fee_on_input:
                            walk.protocol_fee += out - out_left
                        out = out_left
                in_left -= used
                if out > 0:
                    out_left -= out
                    total_in += used
                    total_out += out
            if out_left > 0:
                if in_left == 0:
                    break
                walk.advance()
    received = transfer_fee_excluded_amount(out_fee, epoch, total_out)
    if received == 0:
        raise _err("InsufficientOutAmount")
    if out_left > 0:
        raise _err("NotExactAmountOut")
    amount_in = transfer_fee_included_amount(in_fee, epoch, total_in)
    if amount_in is None:
        raise _err("MathOverflow")
    if amount_in > max_amount_in:
        raise _err("ExceededAmountSlippageTolerance")
    new_pair, new_arrays = walk.new_state(unix_ts)
    return DlmmSwapResult(
        swap_for_y=swap_for_y,
        amount_in=amount_in,
        amount_in_after_transfer_fee=total_in,
        amount_out_before_transfer_fee=total_out,
        amount_out=received,
        input_transfer_fee=amount_in - total_in,
        output_transfer_fee=total_out - received,
        fee=walk.total_fee,
        protocol_fee=walk.protocol_fee,
        host_fee=walk.host_fee,
        fee_on_input=fee_on_input,
        fee_rate=walk.fee_rate(),
        start_bin_id=start,
        active_id_after=walk.active_id,
        bins=tuple(walk.fills),
        lb_pair=new_pair,
        bin_arrays=new_arrays,
    )


# --------------------------------------------------------------------------------------------
# instructions

_SWAP2_ARGS = struct.Struct("<8sQQI")  # discriminator, two u64, Vec<RemainingAccountsSlice> length
_SWAP2_FIXED_ACCOUNTS: Final = 16


@dataclass(frozen=True, slots=True)
class Swap2Ix:
    """A decoded ``swap2`` / ``swap_exact_out2`` instruction.

    ``amount_in``/``min_amount_out`` for ``swap2``; for ``swap_exact_out2`` they hold
    ``max_in_amount``/``out_amount`` (see ``exact_out``). Optional accounts are ``None`` when the
    program id stood in for them. ``remaining_accounts_slices`` are (accounts_type, length) pairs
    (transfer-hook accounts), ``bin_arrays`` the remaining accounts after those slices.
    """

    program_id: Pubkey
    lb_pair: Pubkey
    bin_array_bitmap_extension: Pubkey | None
    reserve_x: Pubkey
    reserve_y: Pubkey
    user_token_in: Pubkey
    user_token_out: Pubkey
    token_x_mint: Pubkey
    token_y_mint: Pubkey
    oracle: Pubkey
    host_fee_in: Pubkey | None
    user: Pubkey
    token_x_program: Pubkey
    token_y_program: Pubkey
    memo_program: Pubkey
    event_authority: Pubkey
    amount_in: int
    min_amount_out: int
    bin_arrays: tuple[Pubkey, ...]
    remaining_accounts_slices: tuple[tuple[int, int], ...] = ()
    transfer_hook_accounts: tuple[Pubkey, ...] = ()
    exact_out: bool = False


def _swap2_accounts(
    program_id: Pubkey,
    lb_pair: Pubkey,
    bin_array_bitmap_extension: Pubkey | None,
    reserve_x: Pubkey,
    reserve_y: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    token_x_mint: Pubkey,
    token_y_mint: Pubkey,
    oracle: Pubkey,
    host_fee_in: Pubkey | None,
    user: Pubkey,
    token_x_program: Pubkey,
    token_y_program: Pubkey,
    memo_program: Pubkey,
    bin_arrays: Sequence[Pubkey],
) -> list[AccountMeta]:
    # Anchor passes the program id (read-only) for an absent optional account.
    return [
        AccountMeta(lb_pair, False, True),
        AccountMeta(program_id, False, False)
        if bin_array_bitmap_extension is None
        else AccountMeta(bin_array_bitmap_extension, False, True),
        AccountMeta(reserve_x, False, True),
        AccountMeta(reserve_y, False, True),
        AccountMeta(user_token_in, False, True),
        AccountMeta(user_token_out, False, True),
        AccountMeta(token_x_mint, False, False),
        AccountMeta(token_y_mint, False, False),
        AccountMeta(oracle, False, True),
        AccountMeta(program_id, False, False)
        if host_fee_in is None
        else AccountMeta(host_fee_in, False, True),
        AccountMeta(user, True, False),
        AccountMeta(token_x_program, False, False),
        AccountMeta(token_y_program, False, False),
        AccountMeta(memo_program, False, False),
        AccountMeta(event_authority_pda(program_id), False, False),
        AccountMeta(program_id, False, False),
        *(AccountMeta(k, False, True) for k in bin_arrays),
    ]


def swap2_ix(
    program_id: Pubkey,
    lb_pair: Pubkey,
    bin_array_bitmap_extension: Pubkey | None,
    reserve_x: Pubkey,
    reserve_y: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    token_x_mint: Pubkey,
    token_y_mint: Pubkey,
    oracle: Pubkey,
    host_fee_in: Pubkey | None,
    user: Pubkey,
    token_x_program: Pubkey,
    token_y_program: Pubkey,
    memo_program: Pubkey,
    bin_arrays: Sequence[Pubkey],
    amount_in: int,
    min_amount_out: int,
) -> Instruction:
    """``swap2(amount_in, min_amount_out, RemainingAccountsInfo { slices: [] })``.

    Account order is the program's ``Swap2`` context; bin arrays follow as writable remaining
    accounts in the order the swap visits them (see :func:`bin_arrays_for_swap`). Mints with a
    transfer hook are not supported (no remaining-account slices are emitted).
    """
    accounts = _swap2_accounts(
        program_id,
        lb_pair,
        bin_array_bitmap_extension,
        reserve_x,
        reserve_y,
        user_token_in,
        user_token_out,
        token_x_mint,
        token_y_mint,
        oracle,
        host_fee_in,
        user,
        token_x_program,
        token_y_program,
        memo_program,
        bin_arrays,
    )
    data = _SWAP2_ARGS.pack(DISC_SWAP2, amount_in, min_amount_out, 0)
    return Instruction(program_id, data, accounts)


def swap_exact_out2_ix(
    program_id: Pubkey,
    lb_pair: Pubkey,
    bin_array_bitmap_extension: Pubkey | None,
    reserve_x: Pubkey,
    reserve_y: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    token_x_mint: Pubkey,
    token_y_mint: Pubkey,
    oracle: Pubkey,
    host_fee_in: Pubkey | None,
    user: Pubkey,
    token_x_program: Pubkey,
    token_y_program: Pubkey,
    memo_program: Pubkey,
    bin_arrays: Sequence[Pubkey],
    max_in_amount: int,
    out_amount: int,
) -> Instruction:
    """``swap_exact_out2(max_in_amount, out_amount, RemainingAccountsInfo { slices: [] })``."""
    accounts = _swap2_accounts(
        program_id,
        lb_pair,
        bin_array_bitmap_extension,
        reserve_x,
        reserve_y,
        user_token_in,
        user_token_out,
        token_x_mint,
        token_y_mint,
        oracle,
        host_fee_in,
        user,
        token_x_program,
        token_y_program,
        memo_program,
        bin_arrays,
    )
    data = _SWAP2_ARGS.pack(DISC_SWAP_EXACT_OUT2, max_in_amount, out_amount, 0)
    return Instruction(program_id, data, accounts)


def parse_swap2(data: bytes, account_keys: Sequence[Pubkey], program_id: Pubkey | None = None) -> Swap2Ix:
    """Decode ``swap2`` (or ``swap_exact_out2``) instruction data and its accounts.

    ``account_keys`` are the instruction's accounts in order. ``program_id`` defaults to the
    16th account (the program itself, which Anchor's ``event_cpi`` requires there). Raises
    ``ValueError`` on anything that is not such an instruction.
    """
    if len(data) < _SWAP2_ARGS.size:
        raise ValueError(f"swap2 data of {len(data)} bytes is too short")
    disc, amount_a, amount_b, n_slices = _SWAP2_ARGS.unpack_from(data)
    if disc not in (DISC_SWAP2, DISC_SWAP_EXACT_OUT2):
        raise ValueError(f"not a swap2/swap_exact_out2 instruction (discriminator {disc.hex()})")
    pos = _SWAP2_ARGS.size
    slices: list[tuple[int, int]] = []
    for _ in range(n_slices):
        if pos + 2 > len(data):
            raise ValueError("truncated RemainingAccountsInfo")
        kind = data[pos]
        pos += 1
        if kind == 3:  # TransferHookMultiReward(u8)
            kind = (3 << 8) | data[pos]
            pos += 1
        slices.append((kind, data[pos]))
        pos += 1
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes in swap2 data")
    keys = list(account_keys)
    if len(keys) < _SWAP2_FIXED_ACCOUNTS:
        raise ValueError(f"swap2 needs {_SWAP2_FIXED_ACCOUNTS} accounts, got {len(keys)}")
    pid = keys[15] if program_id is None else program_id
    if keys[14] != event_authority_pda(pid):
        raise ValueError("account 15 is not the program's event authority")
    hook_count = sum(length for _, length in slices)
    rest = keys[_SWAP2_FIXED_ACCOUNTS:]
    return Swap2Ix(
        program_id=pid,
        lb_pair=keys[0],
        bin_array_bitmap_extension=None if keys[1] == pid else keys[1],
        reserve_x=keys[2],
        reserve_y=keys[3],
        user_token_in=keys[4],
        user_token_out=keys[5],
        token_x_mint=keys[6],
        token_y_mint=keys[7],
        oracle=keys[8],
        host_fee_in=None if keys[9] == pid else keys[9],
        user=keys[10],
        token_x_program=keys[11],
        token_y_program=keys[12],
        memo_program=keys[13],
        event_authority=keys[14],
        amount_in=amount_a,
        min_amount_out=amount_b,
        bin_arrays=tuple(rest[hook_count:]),
        remaining_accounts_slices=tuple(slices),
        transfer_hook_accounts=tuple(rest[:hook_count]),
        exact_out=disc == DISC_SWAP_EXACT_OUT2,
    )
