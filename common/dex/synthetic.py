"""Realistic pools in the real on-chain layouts, for the simulated chain and for tests.

:func:`make_cpmm_pool` builds a Raydium CPMM pool (PoolState, AmmConfig, both vaults, the LP
mint, the observation account and, optionally, both mints); :func:`make_dlmm_pair` builds a
Meteora DLMM pair (LbPair, bin arrays with liquidity spread around the active bin, the reserves,
the oracle, a bitmap extension when the arrays reach beyond the pair's own bitmap and, optionally,
the mints). Addresses are the programs' PDAs where the programs derive them; the pool address
itself is derived from ``seed`` (see :func:`cpmm_pool_address`, :func:`dlmm_pair_address`), so
several pools of the same pair can coexist. Everything is open for swaps at any clock: CPMM
``open_time`` 0, DLMM activation point 0, no limit orders.

Both return ``dict[Pubkey, tuple[Pubkey, bytes, int]]``: address -> (owner program, account data,
lamports), lamports being the rent-exempt minimum (plus the token amount for native-SOL token
accounts, as the SPL Token program requires). The pool address is the first key.
"""

from __future__ import annotations

import hashlib
import struct
from fractions import Fraction
from math import isqrt
from typing import Final

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import (
    NATIVE_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    TransferFeeConfig,
    encode_mint,
    encode_token_account,
)

__all__ = [
    "AccountMap",
    "active_bin_for_price",
    "cpmm_pool_address",
    "dlmm_pair_address",
    "make_cpmm_pool",
    "make_dlmm_pair",
    "rent_exempt_lamports",
]

AccountMap = dict[Pubkey, tuple[Pubkey, bytes, int]]

_DEFAULT_ORACLE_LENGTH: Final = 100
_U64_MAX: Final = (1 << 64) - 1


def rent_exempt_lamports(size: int) -> int:
    """The runtime's rent-exempt minimum: (128 + size) bytes * 3480 lamports/byte-year * 2 years."""
    return (128 + size) * 3480 * 2


def _token_account(
    address: Pubkey, mint: Pubkey, owner: Pubkey, amount: int, token_program: Pubkey, transfer_fee: bool
) -> tuple[Pubkey, tuple[Pubkey, bytes, int]]:
    native = mint == NATIVE_MINT
    reserve = rent_exempt_lamports(165 + (13 if transfer_fee else 0))
    acct = TokenAccount(
        program_id=token_program,
        mint=mint,
        owner=owner,
        amount=amount,
        is_native=reserve if native else None,
        withheld_amount=0 if transfer_fee else None,
    )
    data = encode_token_account(acct)
    lamports = rent_exempt_lamports(len(data)) + (amount if native else 0)
    return address, (token_program, data, lamports)


def _mint_account(
    mint: Pubkey, decimals: int, supply: int, token_program: Pubkey, fee: TransferFeeConfig | None
) -> tuple[Pubkey, bytes, int]:
    m = Mint(
        program_id=token_program,
        mint_authority=None,
        supply=supply,
        decimals=decimals,
        is_initialized=True,
        freeze_authority=None,
        transfer_fee_config=fee,
    )
    data = encode_mint(m)
    return token_program, data, rent_exempt_lamports(len(data))


def _seed_bytes(seed: bytes | str) -> bytes:
    return seed.encode() if isinstance(seed, str) else seed


# --------------------------------------------------------------------------------------------
# Raydium CPMM


def _cpmm_config_address(program_id: Pubkey, index: int) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([b"amm_config", struct.pack(">H", index)], program_id)


def cpmm_pool_address(
    program_id: Pubkey, mint_0: Pubkey, mint_1: Pubkey, seed: bytes | str = b"", config_index: int = 0
) -> Pubkey:
    """The pool state address :func:`make_cpmm_pool` uses.

    With an empty ``seed`` the program's own PDA [b"pool", amm_config, mint_0, mint_1]; otherwise
    the key of a keypair derived from ``seed`` (the program also accepts keypair-created pools).
    """
    m0, m1 = sorted((mint_0, mint_1), key=bytes)
    s = _seed_bytes(seed)
    if not s:
        config, _ = _cpmm_config_address(program_id, config_index)
        return Pubkey.find_program_address([b"pool", bytes(config), bytes(m0), bytes(m1)], program_id)[0]
    return Keypair.from_seed(hashlib.sha256(b"cpmm-pool:" + s + bytes(m0) + bytes(m1)).digest()).pubkey()


def make_cpmm_pool(
    program_id: Pubkey,
    mint_0: Pubkey,
    mint_1: Pubkey,
    decimals_0: int,
    decimals_1: int,
    reserve_0: int,
    reserve_1: int,
    trade_fee_rate: int = 2500,
    seed: bytes | str = b"",
    *,
    protocol_fee_rate: int = 120_000,
    fund_fee_rate: int = 40_000,
    config_index: int = 0,
    token_program_0: Pubkey = TOKEN_PROGRAM_ID,
    token_program_1: Pubkey = TOKEN_PROGRAM_ID,
    transfer_fee_0: TransferFeeConfig | None = None,
    transfer_fee_1: TransferFeeConfig | None = None,
    include_mints: bool = True,
) -> AccountMap:
    """A Raydium CPMM pool holding ``reserve_0`` / ``reserve_1`` (base units).

    The program orders a pool's mints by their bytes; arguments given the other way round are
    swapped together with their decimals, reserves, token programs and fees. Accounts: pool state
    (first key), AmmConfig (PDA [b"amm_config", index BE]), both vaults (PDA [b"pool_vault",
    pool, mint], owned by the authority PDA), LP mint, observation and, with ``include_mints``,
    both mints (a Token-2022 mint gets ``transfer_fee_*`` as its TransferFeeConfig).
    """
    if bytes(mint_0) > bytes(mint_1):
        mint_0, mint_1 = mint_1, mint_0
        decimals_0, decimals_1 = decimals_1, decimals_0
        reserve_0, reserve_1 = reserve_1, reserve_0
        token_program_0, token_program_1 = token_program_1, token_program_0
        transfer_fee_0, transfer_fee_1 = transfer_fee_1, transfer_fee_0
    if not (0 < reserve_0 <= _U64_MAX and 0 < reserve_1 <= _U64_MAX):
        raise ValueError("both reserves must be positive u64 amounts")
    for program, fee in ((token_program_0, transfer_fee_0), (token_program_1, transfer_fee_1)):
        if fee is not None and program != TOKEN_2022_PROGRAM_ID:
            raise ValueError("a transfer fee needs a Token-2022 mint")

    config, config_bump = _cpmm_config_address(program_id, config_index)
    pool = cpmm_pool_address(program_id, mint_0, mint_1, seed, config_index)
    authority, auth_bump = Pubkey.find_program_address([cpmm.AUTH_SEED], program_id)
    vault_0 = Pubkey.find_program_address([b"pool_vault", bytes(pool), bytes(mint_0)], program_id)[0]
    vault_1 = Pubkey.find_program_address([b"pool_vault", bytes(pool), bytes(mint_1)], program_id)[0]
    lp_mint = Pubkey.find_program_address([b"pool_lp_mint", bytes(pool)], program_id)[0]
    observation = Pubkey.find_program_address([b"observation", bytes(pool)], program_id)[0]
    lp_supply = isqrt(reserve_0 * reserve_1)

    state = cpmm.PoolState(
        amm_config=config,
        pool_creator=Pubkey.default(),
        token_0_vault=vault_0,
        token_1_vault=vault_1,
        lp_mint=lp_mint,
        token_0_mint=mint_0,
        token_1_mint=mint_1,
        token_0_program=token_program_0,
        token_1_program=token_program_1,
        observation_key=observation,
        auth_bump=auth_bump,
        status=0,
        lp_mint_decimals=9,
        mint_0_decimals=decimals_0,
        mint_1_decimals=decimals_1,
        lp_supply=lp_supply,
        protocol_fees_token_0=0,
        protocol_fees_token_1=0,
        fund_fees_token_0=0,
        fund_fees_token_1=0,
        open_time=0,
        recent_epoch=0,
    )
    amm_config = cpmm.AmmConfig(
        bump=config_bump,
        disable_create_pool=False,
        index=config_index,
        trade_fee_rate=trade_fee_rate,
        protocol_fee_rate=protocol_fee_rate,
        fund_fee_rate=fund_fee_rate,
        create_pool_fee=150_000_000,
        protocol_owner=Pubkey.default(),
        fund_owner=Pubkey.default(),
    )
    state_data = cpmm.encode_pool_state(state)
    config_data = cpmm.encode_amm_config(amm_config)
    lp_data = encode_mint(Mint(TOKEN_PROGRAM_ID, authority, lp_supply, 9, True, None))
    obs_data = cpmm.observation_data(pool)
    out: AccountMap = {
        pool: (program_id, state_data, rent_exempt_lamports(len(state_data))),
        config: (program_id, config_data, rent_exempt_lamports(len(config_data))),
    }
    for addr, entry in (
        _token_account(vault_0, mint_0, authority, reserve_0, token_program_0, transfer_fee_0 is not None),
        _token_account(vault_1, mint_1, authority, reserve_1, token_program_1, transfer_fee_1 is not None),
    ):
        out[addr] = entry
    out[lp_mint] = (TOKEN_PROGRAM_ID, lp_data, rent_exempt_lamports(len(lp_data)))
    out[observation] = (program_id, obs_data, rent_exempt_lamports(len(obs_data)))
    if include_mints:
        out[mint_0] = _mint_account(mint_0, decimals_0, reserve_0, token_program_0, transfer_fee_0)
        out[mint_1] = _mint_account(mint_1, decimals_1, reserve_1, token_program_1, transfer_fee_1)
    return out


# --------------------------------------------------------------------------------------------
# Meteora DLMM


def active_bin_for_price(price_raw: Fraction, bin_step: int) -> int:
    """The bin whose Q64.64 price (``get_price_from_id``) is nearest ``price_raw``.

    ``price_raw`` is Y base units per X base unit. Integer binary search, no floats.
    """
    if price_raw <= 0:
        raise ValueError("price must be positive")
    target = price_raw * (1 << 64)
    lo, hi = dlmm.MIN_BIN_ID // bin_step, dlmm.MAX_BIN_ID // bin_step
    while lo < hi:  # the last id whose price is <= target
        mid = (lo + hi + 1) // 2
        if dlmm.get_price_from_id(mid, bin_step) <= target:
            lo = mid
        else:
            hi = mid - 1
    below = dlmm.get_price_from_id(lo, bin_step)
    above = dlmm.get_price_from_id(lo + 1, bin_step)
    return lo + 1 if above - target < target - below else lo


def dlmm_pair_address(
    program_id: Pubkey,
    mint_x: Pubkey,
    mint_y: Pubkey,
    bin_step: int = 10,
    base_factor: int = 10_000,
    seed: bytes | str = b"",
) -> Pubkey:
    """The LbPair address :func:`make_dlmm_pair` uses.

    With an empty ``seed`` the program's ``derive_lb_pair_pda2`` ([min mint, max mint, bin_step,
    base_factor]); otherwise ``derive_lb_pair_with_preset_parameter_key`` with a preset-parameter
    PDA whose index is taken from ``seed``.
    """
    lo, hi = sorted((mint_x, mint_y), key=bytes)
    s = _seed_bytes(seed)
    if not s:
        seeds = [bytes(lo), bytes(hi), struct.pack("<H", bin_step), struct.pack("<H", base_factor)]
        return Pubkey.find_program_address(seeds, program_id)[0]
    index = int.from_bytes(hashlib.sha256(s).digest()[:2], "little")
    preset = Pubkey.find_program_address([b"preset_parameter2", struct.pack("<H", index)], program_id)[0]
    return Pubkey.find_program_address([bytes(preset), bytes(lo), bytes(hi)], program_id)[0]


def make_dlmm_pair(
    program_id: Pubkey,
    mint_x: Pubkey,
    mint_y: Pubkey,
    decimals_x: int,
    decimals_y: int,
    price: Fraction,
    bin_step: int = 10,
    liquidity_x: int = 0,
    liquidity_y: int = 0,
    bins_each_side: int = 60,
    seed: bytes | str = b"",
    *,
    base_factor: int = 10_000,
    base_fee_power_factor: int = 0,
    protocol_share: int = 500,
    variable_fee_control: int = 40_000,
    max_volatility_accumulator: int = 350_000,
    filter_period: int = 30,
    decay_period: int = 600,
    reduction_factor: int = 5_000,
    token_program_x: Pubkey = TOKEN_PROGRAM_ID,
    token_program_y: Pubkey = TOKEN_PROGRAM_ID,
    transfer_fee_x: TransferFeeConfig | None = None,
    transfer_fee_y: TransferFeeConfig | None = None,
    include_mints: bool = True,
) -> AccountMap:
    """A Meteora DLMM pair at ``price`` (Y per X, in whole tokens) with spot-shaped liquidity.

    ``liquidity_y`` (base units) is spread evenly over the ``bins_each_side`` bins below the
    active bin and ``liquidity_x`` over those above; the active bin holds half a bin's share of
    each. Defaults give a 0.1 % base fee at bin step 10 plus the usual volatility fee. Accounts:
    LbPair (first key), its bin arrays (PDA [b"bin_array", pair, index i64]), a bitmap extension
    if needed, reserves (PDA [pair, mint], owned by the pair), the oracle (PDA [b"oracle", pair])
    and, with ``include_mints``, both mints.
    """
    if bins_each_side < 0:
        raise ValueError("bins_each_side must be >= 0")
    if not (0 <= liquidity_x <= _U64_MAX and 0 <= liquidity_y <= _U64_MAX):
        raise ValueError("liquidity must fit a u64 token amount")
    for program, fee in ((token_program_x, transfer_fee_x), (token_program_y, transfer_fee_y)):
        if fee is not None and program != TOKEN_2022_PROGRAM_ID:
            raise ValueError("a transfer fee needs a Token-2022 mint")
    raw = Fraction(price) * 10**decimals_y / 10**decimals_x
    active = active_bin_for_price(raw, bin_step)
    pair_address = dlmm_pair_address(program_id, mint_x, mint_y, bin_step, base_factor, seed)
    n = bins_each_side
    share_y = 2 * liquidity_y // (2 * n + 1) if n else 0
    share_x = 2 * liquidity_x // (2 * n + 1) if n else 0
    amounts: dict[int, tuple[int, int]] = {}
    for k in range(1, n + 1):
        amounts[active - k] = (0, share_y)
        amounts[active + k] = (share_x, 0)
    amounts[active] = (liquidity_x - n * share_x, liquidity_y - n * share_y)

    indexes = sorted({dlmm.bin_array_index(b) for b in amounts})
    arrays: list[dlmm.BinArray] = []
    bitmap = 0
    positive = [0] * dlmm.EXTENSION_BINARRAY_BITMAP_SIZE
    negative = [0] * dlmm.EXTENSION_BINARRAY_BITMAP_SIZE
    for index in indexes:
        bins = []
        for pos in range(dlmm.MAX_BIN_PER_ARRAY):
            bin_id = index * dlmm.MAX_BIN_PER_ARRAY + pos
            x, y = amounts.get(bin_id, (0, 0))
            if x or y:
                p = dlmm.get_price_from_id(bin_id, bin_step)
                liquidity = x * p + (y << 64)  # the program's bin liquidity: price * x + y, Q64.64
                if liquidity >> 128:
                    raise ValueError(f"bin {bin_id} liquidity overflows u128: lower the amounts or the price")
                bins.append(dlmm.Bin(amount_x=x, amount_y=y, price=p, liquidity_supply=liquidity))
            else:
                bins.append(dlmm.Bin())
        arrays.append(dlmm.BinArray(index=index, version=1, lb_pair=pair_address, bins=tuple(bins)))
        if -dlmm.BIN_ARRAY_BITMAP_SIZE <= index < dlmm.BIN_ARRAY_BITMAP_SIZE:
            bitmap |= 1 << (index + dlmm.BIN_ARRAY_BITMAP_SIZE)
        else:
            mag = index if index > 0 else -(index + 1)
            word, bit = mag // dlmm.BIN_ARRAY_BITMAP_SIZE - 1, mag % dlmm.BIN_ARRAY_BITMAP_SIZE
            if word >= dlmm.EXTENSION_BINARRAY_BITMAP_SIZE:
                raise ValueError(f"bin array {index} is beyond the bitmap extension")
            (positive if index > 0 else negative)[word] |= 1 << bit

    reserve_x = Pubkey.find_program_address([bytes(pair_address), bytes(mint_x)], program_id)[0]
    reserve_y = Pubkey.find_program_address([bytes(pair_address), bytes(mint_y)], program_id)[0]
    oracle = dlmm.oracle_pda(program_id, pair_address)
    bump = Pubkey.find_program_address([bytes(pair_address)], program_id)[1]
    max_bin = dlmm.MAX_BIN_ID // bin_step
    zero = Pubkey.default()
    pair = dlmm.LbPair(
        parameters=dlmm.StaticParameters(
            base_factor=base_factor,
            filter_period=filter_period,
            decay_period=decay_period,
            reduction_factor=reduction_factor,
            variable_fee_control=variable_fee_control,
            max_volatility_accumulator=max_volatility_accumulator,
            min_bin_id=-max_bin,
            max_bin_id=max_bin,
            protocol_share=protocol_share,
            base_fee_power_factor=base_fee_power_factor,
            function_type=dlmm.FUNCTION_TYPE_UNDETERMINED,
            collect_fee_mode=dlmm.COLLECT_FEE_MODE_INPUT_ONLY,
        ),
        v_parameters=dlmm.VariableParameters(0, 0, active, 0),
        bump_seed=bytes([bump]),
        bin_step_seed=struct.pack("<H", bin_step),
        pair_type=dlmm.PAIR_TYPE_PERMISSIONLESS_V2,
        active_id=active,
        bin_step=bin_step,
        status=dlmm.PAIR_STATUS_ENABLED,
        require_base_factor_seed=1,
        base_factor_seed=struct.pack("<H", base_factor),
        activation_type=dlmm.ACTIVATION_TYPE_SLOT,
        creator_pool_on_off_control=0,
        token_x_mint=mint_x,
        token_y_mint=mint_y,
        reserve_x=reserve_x,
        reserve_y=reserve_y,
        protocol_fee_x=0,
        protocol_fee_y=0,
        padding_1=bytes(32),
        reward_infos=(dlmm.RewardInfo.empty(), dlmm.RewardInfo.empty()),
        oracle=oracle,
        bin_array_bitmap=bitmap,
        last_updated_at=0,
        padding_2=bytes(32),
        pre_activation_swap_address=zero,
        base_key=zero,
        activation_point=0,
        pre_activation_duration=0,
        padding_3=bytes(8),
        padding_4=0,
        creator=zero,
        token_mint_x_program_flag=1 if token_program_x == TOKEN_2022_PROGRAM_ID else 0,
        token_mint_y_program_flag=1 if token_program_y == TOKEN_2022_PROGRAM_ID else 0,
        version=1,
        reserved=bytes(21),
    )
    pair_data = dlmm.encode_lb_pair(pair)
    out: AccountMap = {pair_address: (program_id, pair_data, rent_exempt_lamports(len(pair_data)))}
    for array in arrays:
        data = dlmm.encode_bin_array(array)
        out[dlmm.bin_array_pda(program_id, pair_address, array.index)] = (
            program_id,
            data,
            rent_exempt_lamports(len(data)),
        )
    if any(positive) or any(negative):
        ext = dlmm.BinArrayBitmapExtension(pair_address, tuple(positive), tuple(negative))
        data = dlmm.encode_bin_array_bitmap_extension(ext)
        out[dlmm.bin_array_bitmap_extension_pda(program_id, pair_address)] = (
            program_id,
            data,
            rent_exempt_lamports(len(data)),
        )
    total_x = sum(x for x, _ in amounts.values())
    total_y = sum(y for _, y in amounts.values())
    for addr, entry in (
        _token_account(reserve_x, mint_x, pair_address, total_x, token_program_x, transfer_fee_x is not None),
        _token_account(reserve_y, mint_y, pair_address, total_y, token_program_y, transfer_fee_y is not None),
    ):
        out[addr] = entry
    oracle_obj = dlmm.Oracle(
        0, 0, _DEFAULT_ORACLE_LENGTH, tuple(dlmm.Observation() for _ in range(_DEFAULT_ORACLE_LENGTH))
    )
    oracle_data = dlmm.encode_oracle(oracle_obj)
    out[oracle] = (program_id, oracle_data, rent_exempt_lamports(len(oracle_data)))
    if include_mints:
        out[mint_x] = _mint_account(mint_x, decimals_x, total_x, token_program_x, transfer_fee_x)
        out[mint_y] = _mint_account(mint_y, decimals_y, total_y, token_program_y, transfer_fee_y)
    return out
