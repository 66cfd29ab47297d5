"""Raydium CPMM: layouts, the program's swap math against real vectors, instructions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from common.dex import raydium_cpmm as cpmm
from common.dex.errors import LayoutError, QuoteError
from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, TransferFeeConfig

from .conftest import CpmmFixture, cpmm_fixture, vectors_for

VECTORS = vectors_for("raydium_cpmm")
U64_MAX = (1 << 64) - 1


def _quote(fx: CpmmFixture, v: dict[str, Any]) -> cpmm.CpmmSwapResult:
    zero_for_one = v["direction"] == "token_0_to_token_1"
    fee_in, fee_out = (fx.fee_0, fx.fee_1) if zero_for_one else (fx.fee_1, fx.fee_0)
    clock = v["clock"]
    return cpmm.quote_exact_in(
        fx.pool,
        fx.config,
        fx.vault_0,
        fx.vault_1,
        v["amount_in"],
        zero_for_one,
        clock["unix_timestamp"],
        fee_in,
        fee_out,
        clock["epoch"],
        v["minimum_amount_out"],
    )


def test_there_are_twelve_cpmm_vectors() -> None:
    assert len(VECTORS) == 12


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_swap_base_input_matches_program(cpmm_fx: CpmmFixture, v: dict[str, Any]) -> None:
    if v["result"] == "error":
        with pytest.raises(QuoteError) as exc:
            _quote(cpmm_fx, v)
        assert exc.value.code == v["error"]["code"]
        assert exc.value.name == v["error"]["name"]
        assert exc.value.message == v["error"]["message"]
        assert exc.value.venue == "raydium_cpmm"
        return
    r = _quote(cpmm_fx, v)
    assert r.amount_out == v["expected_amount_out"]
    assert r.amount_in == v["amount_in_debited"]
    fee = v["fee"]
    assert (r.trade_fee, r.protocol_fee, r.fund_fee, r.creator_fee) == (
        fee["trade_fee"],
        fee["protocol_fee"],
        fee["fund_fee"],
        fee["creator_fee"],
    )


@pytest.mark.parametrize("v", [v for v in VECTORS if v["result"] == "ok"], ids=lambda v: v["id"])
def test_swap_result_state_accrues_fees_and_moves_vaults(cpmm_fx: CpmmFixture, v: dict[str, Any]) -> None:
    r = _quote(cpmm_fx, v)
    pool, new = cpmm_fx.pool, r.pool
    if r.zero_for_one:
        assert new.protocol_fees_token_0 - pool.protocol_fees_token_0 == r.protocol_fee
        assert new.fund_fees_token_0 - pool.fund_fees_token_0 == r.fund_fee
        assert new.protocol_fees_token_1 == pool.protocol_fees_token_1
        assert r.vault_0_amount == cpmm_fx.vault_0 + r.amount_in_after_transfer_fee
        assert r.vault_1_amount == cpmm_fx.vault_1 - r.amount_out_before_transfer_fee
    else:
        assert new.protocol_fees_token_1 - pool.protocol_fees_token_1 == r.protocol_fee
        assert new.fund_fees_token_1 - pool.fund_fees_token_1 == r.fund_fee
        assert r.vault_1_amount == cpmm_fx.vault_1 + r.amount_in_after_transfer_fee
        assert r.vault_0_amount == cpmm_fx.vault_0 - r.amount_out_before_transfer_fee
    assert new.recent_epoch == v["clock"]["epoch"]
    assert cpmm_fx.pool.recent_epoch != v["clock"]["epoch"]  # the input was not mutated
    # the swap can be applied by re-encoding the pool
    assert (
        cpmm.decode_pool_state(
            cpmm_fx.address, cpmm_fx.program_id, cpmm.encode_pool_state(new), cpmm_fx.program_id
        )
        == new
    )


def test_round_trip_is_exact(cpmm_fx: CpmmFixture) -> None:
    assert cpmm.encode_pool_state(cpmm_fx.pool) == cpmm_fx.raw["pool_state"].data
    assert cpmm.encode_amm_config(cpmm_fx.config) == cpmm_fx.raw["amm_config"].data
    assert len(cpmm_fx.raw["pool_state"].data) == cpmm.POOL_STATE_SIZE == 637
    assert len(cpmm_fx.raw["amm_config"].data) == cpmm.AMM_CONFIG_SIZE == 236
    assert cpmm_fx.pool.open_time == 1782220562
    assert cpmm_fx.config.trade_fee_rate == 2500


def test_trailing_bytes_are_kept(cpmm_fx: CpmmFixture) -> None:
    raw = cpmm_fx.raw["pool_state"]
    longer = raw.data + b"\x07" * 11
    pool = cpmm.decode_pool_state(raw.address, raw.owner, longer, cpmm_fx.program_id)
    assert pool.tail == b"\x07" * 11
    assert cpmm.encode_pool_state(pool) == longer


@pytest.mark.parametrize("which", ["pool_state", "amm_config"])
def test_decoder_rejects_wrong_owner_size_and_discriminator(cpmm_fx: CpmmFixture, which: str) -> None:
    raw = cpmm_fx.raw[which]
    decode = cpmm.decode_pool_state if which == "pool_state" else cpmm.decode_amm_config
    name = "PoolState" if which == "pool_state" else "AmmConfig"
    with pytest.raises(LayoutError, match=f"{name} {raw.address}: owner"):
        decode(raw.address, TOKEN_PROGRAM_ID, raw.data, cpmm_fx.program_id)
    with pytest.raises(LayoutError, match=f"{name} {raw.address}: size"):
        decode(raw.address, raw.owner, raw.data[:-1], cpmm_fx.program_id)
    with pytest.raises(LayoutError, match=f"{name} {raw.address}: discriminator") as exc:
        decode(raw.address, raw.owner, b"\x00" * 8 + raw.data[8:], cpmm_fx.program_id)
    assert exc.value.address == str(raw.address)
    # a different program id is a different owner
    with pytest.raises(LayoutError, match="owner"):
        decode(raw.address, raw.owner, raw.data, Pubkey.new_unique())


def test_reserves_exclude_fees_held_for_protocol_and_fund(cpmm_fx: CpmmFixture) -> None:
    r0, r1 = cpmm_fx.pool.reserves(cpmm_fx.vault_0, cpmm_fx.vault_1)
    p = cpmm_fx.pool
    assert r0 == cpmm_fx.vault_0 - p.protocol_fees_token_0 - p.fund_fees_token_0 - p.creator_fees_token_0
    assert r1 == cpmm_fx.vault_1 - p.protocol_fees_token_1 - p.fund_fees_token_1 - p.creator_fees_token_1
    with pytest.raises(QuoteError) as exc:
        p.reserves(p.protocol_fees_token_0, cpmm_fx.vault_1)
    assert exc.value.name == "InsufficientVault"


def test_disabled_swap_status_is_not_approved(cpmm_fx: CpmmFixture) -> None:
    pool = dataclasses.replace(cpmm_fx.pool, status=cpmm.STATUS_SWAP_DISABLED)
    with pytest.raises(QuoteError) as exc:
        cpmm.quote_exact_in(pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1, 10**9, True, 1789000000)
    assert exc.value.code == 6000
    # deposit/withdraw bits do not stop swaps
    pool = dataclasses.replace(
        cpmm_fx.pool, status=cpmm.STATUS_DEPOSIT_DISABLED | cpmm.STATUS_WITHDRAW_DISABLED
    )
    assert cpmm.quote_exact_in(
        pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1, 10**9, True, 1789000000
    )


def test_open_time_boundary(cpmm_fx: CpmmFixture) -> None:
    t = cpmm_fx.pool.open_time
    with pytest.raises(QuoteError):
        cpmm.quote_exact_in(
            cpmm_fx.pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1, 10**9, True, t - 1
        )
    assert cpmm.quote_exact_in(cpmm_fx.pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1, 10**9, True, t)


def test_creator_fee_on_output_and_input() -> None:
    fx = cpmm_fixture()
    config = dataclasses.replace(fx.config, creator_fee_rate=1000)
    base = dict(vault_0_amount=fx.vault_0, vault_1_amount=fx.vault_1, amount_in=10**9, now_unix_ts=1789000000)
    off = cpmm.quote_exact_in(fx.pool, config, zero_for_one=True, **base)  # type: ignore[arg-type]
    assert off.creator_fee == 0  # the pool has creator fees disabled
    on_in = dataclasses.replace(fx.pool, enable_creator_fee=1, creator_fee_on=0)
    r = cpmm.quote_exact_in(on_in, config, zero_for_one=True, **base)  # type: ignore[arg-type]
    assert r.creator_fee_on_input and r.creator_fee == (r.trade_fee + r.creator_fee) * 1000 // 3500
    assert r.pool.creator_fees_token_0 == r.creator_fee
    on_out = dataclasses.replace(fx.pool, enable_creator_fee=1, creator_fee_on=2)  # only token 1
    r = cpmm.quote_exact_in(on_out, config, zero_for_one=True, **base)  # type: ignore[arg-type]
    assert not r.creator_fee_on_input and r.creator_fee > 0
    assert r.pool.creator_fees_token_1 == r.creator_fee
    assert r.amount_out < off.amount_out
    with pytest.raises(QuoteError) as exc:
        bad = dataclasses.replace(fx.pool, creator_fee_on=3)
        cpmm.quote_exact_in(bad, config, zero_for_one=True, **base)  # type: ignore[arg-type]
    assert exc.value.name == "InvalidFeeModel"


@pytest.mark.parametrize("zero_for_one", [True, False])
@pytest.mark.parametrize("amount_out", [1, 1000, 10**9, 10**11])
def test_exact_out_is_the_least_input_that_delivers(
    cpmm_fx: CpmmFixture, zero_for_one: bool, amount_out: int
) -> None:
    fee_in, fee_out = (cpmm_fx.fee_0, cpmm_fx.fee_1) if zero_for_one else (cpmm_fx.fee_1, cpmm_fx.fee_0)
    args = (cpmm_fx.pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1)
    r = cpmm.quote_exact_out(*args, amount_out, zero_for_one, 1789000000, fee_in, fee_out, 1041)
    assert r.amount_out == amount_out
    back = cpmm.quote_exact_in(*args, r.amount_in, zero_for_one, 1789000000, fee_in, fee_out, 1041)
    assert back.amount_out >= amount_out
    with pytest.raises(QuoteError) as exc:
        cpmm.quote_exact_out(
            *args, amount_out, zero_for_one, 1789000000, fee_in, fee_out, 1041, r.amount_in - 1
        )
    assert exc.value.name == "ExceededSlippage"


def test_exact_out_rejections(cpmm_fx: CpmmFixture) -> None:
    args = (cpmm_fx.pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1)
    with pytest.raises(QuoteError) as exc:
        cpmm.quote_exact_out(*args, 0, True, 1789000000)
    assert exc.value.code == 2505
    _, r1 = cpmm_fx.pool.reserves(cpmm_fx.vault_0, cpmm_fx.vault_1)
    with pytest.raises(QuoteError) as exc:
        cpmm.quote_exact_out(*args, r1, True, 1789000000)
    assert exc.value.code is None


def test_token_2022_transfer_fees_on_both_legs(cpmm_fx: CpmmFixture) -> None:
    fee = TransferFeeConfig.constant(100, 10**12)  # 1 %
    args = (cpmm_fx.pool, cpmm_fx.config, cpmm_fx.vault_0, cpmm_fx.vault_1)
    plain = cpmm.quote_exact_in(*args, 10**9, True, 1789000000)
    r = cpmm.quote_exact_in(*args, 10**9, True, 1789000000, fee, fee, 1041)
    assert r.input_transfer_fee == 10**7
    assert r.amount_in_after_transfer_fee == 10**9 - 10**7
    assert r.output_transfer_fee == -(-r.amount_out_before_transfer_fee // 100)
    assert r.amount_out == r.amount_out_before_transfer_fee - r.output_transfer_fee < plain.amount_out


# -- properties ----------------------------------------------------------------------------

_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(a=st.integers(1, 10**15), b=st.integers(1, 10**15), zero_for_one=st.booleans())
def test_output_is_monotonic_and_bounded(a: int, b: int, zero_for_one: bool) -> None:
    fx = cpmm_fixture()
    lo, hi = min(a, b), max(a, b)
    outs = []
    for amount in (lo, hi):
        try:
            r = cpmm.quote_exact_in(
                fx.pool, fx.config, fx.vault_0, fx.vault_1, amount, zero_for_one, 1789000000
            )
        except QuoteError:
            outs.append(0)
            continue
        r0, r1 = fx.pool.reserves(fx.vault_0, fx.vault_1)
        assert r.amount_out < (r1 if zero_for_one else r0)
        assert r.trade_fee >= r.protocol_fee + r.fund_fee
        outs.append(r.amount_out)
    assert outs[0] <= outs[1]


@_settings
@given(
    reserve_0=st.integers(1, U64_MAX),
    reserve_1=st.integers(1, U64_MAX),
    amount=st.integers(0, U64_MAX),
    trade_fee_rate=st.integers(0, 999_999),
    zero_for_one=st.booleans(),
    bps=st.integers(0, 10_000),
)
def test_quoting_raises_only_quote_error(
    reserve_0: int, reserve_1: int, amount: int, trade_fee_rate: int, zero_for_one: bool, bps: int
) -> None:
    fx = cpmm_fixture()
    config = dataclasses.replace(fx.config, trade_fee_rate=trade_fee_rate)
    pool = dataclasses.replace(
        fx.pool,
        protocol_fees_token_0=0,
        protocol_fees_token_1=0,
        fund_fees_token_0=0,
        fund_fees_token_1=0,
    )
    fee = TransferFeeConfig.constant(bps, U64_MAX)
    try:
        r = cpmm.quote_exact_in(
            pool, config, reserve_0, reserve_1, amount, zero_for_one, 1789000000, fee, fee, 1
        )
    except QuoteError:
        return
    assert 0 < r.amount_out <= (reserve_1 if zero_for_one else reserve_0)


# -- instructions ----------------------------------------------------------------------------


def test_swap_base_input_instruction(cpmm_fx: CpmmFixture) -> None:
    keys = [Pubkey.new_unique() for _ in range(5)]
    payer, user_in, user_out = keys[0], keys[1], keys[2]
    p = cpmm_fx.pool
    ix = cpmm.swap_base_input_ix(
        cpmm_fx.program_id,
        payer,
        cpmm_fx.address,
        p.amm_config,
        user_in,
        user_out,
        p.token_0_vault,
        p.token_1_vault,
        TOKEN_PROGRAM_ID,
        TOKEN_2022_PROGRAM_ID,
        p.token_0_mint,
        p.token_1_mint,
        p.observation_key,
        123_456_789,
        987,
    )
    assert ix.program_id == cpmm_fx.program_id
    assert bytes(ix.data) == bytes([143, 190, 90, 218, 196, 30, 51, 222]) + (123_456_789).to_bytes(
        8, "little"
    ) + (987).to_bytes(8, "little")
    authority = Pubkey.find_program_address([b"vault_and_lp_mint_auth_seed"], cpmm_fx.program_id)[0]
    expected = [
        (payer, True, False),
        (authority, False, False),
        (p.amm_config, False, False),
        (cpmm_fx.address, False, True),
        (user_in, False, True),
        (user_out, False, True),
        (p.token_0_vault, False, True),
        (p.token_1_vault, False, True),
        (TOKEN_PROGRAM_ID, False, False),
        (TOKEN_2022_PROGRAM_ID, False, False),
        (p.token_0_mint, False, False),
        (p.token_1_mint, False, False),
        (p.observation_key, False, True),
    ]
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == expected
    parsed = cpmm.parse_swap_base_input(bytes(ix.data), [m.pubkey for m in ix.accounts], cpmm_fx.program_id)
    assert parsed.amount_in == 123_456_789 and parsed.minimum_amount_out == 987 and not parsed.base_output
    assert (parsed.payer, parsed.pool_state, parsed.input_vault, parsed.observation_state) == (
        payer,
        cpmm_fx.address,
        p.token_0_vault,
        p.observation_key,
    )
    rebuilt = cpmm.swap_base_input_ix(
        cpmm_fx.program_id,
        parsed.payer,
        parsed.pool_state,
        parsed.amm_config,
        parsed.input_token_account,
        parsed.output_token_account,
        parsed.input_vault,
        parsed.output_vault,
        parsed.input_token_program,
        parsed.output_token_program,
        parsed.input_token_mint,
        parsed.output_token_mint,
        parsed.observation_state,
        parsed.amount_in,
        parsed.minimum_amount_out,
    )
    assert rebuilt == ix
    with pytest.raises(ValueError):
        cpmm.parse_swap_base_output(bytes(ix.data), [m.pubkey for m in ix.accounts])
    with pytest.raises(ValueError):
        cpmm.parse_swap_base_input(bytes(ix.data)[:-1], [m.pubkey for m in ix.accounts])


def test_swap_base_output_instruction(cpmm_fx: CpmmFixture) -> None:
    p = cpmm_fx.pool
    payer, a, b = (Pubkey.new_unique() for _ in range(3))
    ix = cpmm.swap_base_output_ix(
        cpmm_fx.program_id,
        payer,
        cpmm_fx.address,
        p.amm_config,
        a,
        b,
        p.token_1_vault,
        p.token_0_vault,
        TOKEN_2022_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        p.token_1_mint,
        p.token_0_mint,
        p.observation_key,
        5,
        7,
    )
    assert bytes(ix.data)[:8] == bytes([55, 217, 98, 86, 163, 74, 180, 173])
    parsed = cpmm.parse_swap_base_output(bytes(ix.data), [m.pubkey for m in ix.accounts])
    assert parsed.base_output and (parsed.amount_a, parsed.amount_b) == (5, 7)


# -- synthetic pools ---------------------------------------------------------------------------


def test_synthetic_pool_decodes_and_quotes() -> None:
    from common.dex import synthetic
    from common.dex.spl_token import NATIVE_MINT, decode_mint, decode_token_account

    program = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
    usdc = Pubkey.new_unique()
    accounts = synthetic.make_cpmm_pool(program, usdc, NATIVE_MINT, 6, 9, 150 * 10**9, 10**12, seed="a")
    address = next(iter(accounts))
    assert address == synthetic.cpmm_pool_address(program, NATIVE_MINT, usdc, "a")
    assert address != synthetic.cpmm_pool_address(program, NATIVE_MINT, usdc, "b")
    owner, data, lamports = accounts[address]
    pool = cpmm.decode_pool_state(address, owner, data, program)
    assert lamports == synthetic.rent_exempt_lamports(637)
    # mints are ordered by their bytes, like the program does
    assert bytes(pool.token_0_mint) < bytes(pool.token_1_mint)
    config = cpmm.decode_amm_config(pool.amm_config, *accounts[pool.amm_config][:2], program)
    vaults = [decode_token_account(v, *accounts[v][:2]) for v in (pool.token_0_vault, pool.token_1_vault)]
    assert all(v.owner == cpmm.authority_pda(program) for v in vaults)
    for v in vaults:
        if v.mint == NATIVE_MINT:
            assert (
                accounts[pool.token_0_vault if v is vaults[0] else pool.token_1_vault][2]
                == (v.is_native or 0) + v.amount
            )
    assert {v.mint: v.amount for v in vaults} == {usdc: 150 * 10**9, NATIVE_MINT: 10**12}
    assert decode_mint(usdc, *accounts[usdc][:2]).decimals == 6
    zero_for_one = pool.token_0_mint == NATIVE_MINT
    r = cpmm.quote_exact_in(pool, config, vaults[0].amount, vaults[1].amount, 10**9, zero_for_one, 0)
    assert 149_000_000 < r.amount_out < 150_000_000  # 1 SOL at 150 USDC, less 0.25 % and impact
    assert accounts[pool.observation_key][1][:8] == bytes([122, 174, 197, 53, 129, 9, 165, 132])


def test_error_lookup() -> None:
    assert cpmm.error_name(6005) == "ExceededSlippage"
    assert cpmm.error_message(6005) == "Exceeds desired slippage limit"
    assert cpmm.error_name(6014) == "NoFeeCollect"
    assert cpmm.error_name(2505) == "RequireGtViolated"  # Anchor's, inside the program
    assert cpmm.error_name(3007) == "AccountOwnedByWrongProgram"
    assert cpmm.error_name(6015) is None and cpmm.error_name(1) is None
    assert cpmm.SLIPPAGE_ERROR_CODES == {6005}
    # every error the quote math raises carries the code the table gives its name
    for code, (name, message) in cpmm.PROGRAM_ERRORS.items():
        err = cpmm._err(name)
        assert (err.code, err.name, err.message, err.venue) == (code, name, message, "raydium_cpmm")


@_settings
@given(
    reserve_0=st.integers(10**3, 10**18),
    reserve_1=st.integers(10**3, 10**18),
    a=st.integers(1, 10**18),
    b=st.integers(1, 10**18),
    trade_fee_rate=st.integers(0, 100_000),
    zero_for_one=st.booleans(),
)
def test_output_is_monotonic_and_bounded_on_any_pool(
    reserve_0: int, reserve_1: int, a: int, b: int, trade_fee_rate: int, zero_for_one: bool
) -> None:
    """Any reserves and fee, not only the fixture's: more in never gives less out, and the output
    stays strictly below what the pool holds of it (the constant product never decreases)."""
    fx = cpmm_fixture()
    config = dataclasses.replace(fx.config, trade_fee_rate=trade_fee_rate)
    pool = dataclasses.replace(
        fx.pool, protocol_fees_token_0=0, protocol_fees_token_1=0, fund_fees_token_0=0, fund_fees_token_1=0
    )
    reserve_out = reserve_1 if zero_for_one else reserve_0
    outs = []
    for amount in sorted((a, b)):
        try:
            r = cpmm.quote_exact_in(pool, config, reserve_0, reserve_1, amount, zero_for_one, 1789000000)
        except QuoteError as exc:
            assert exc.code == 2505  # only "nothing comes out" is refused on a live pool
            outs.append(0)
            continue
        assert 0 < r.amount_out < reserve_out
        outs.append(r.amount_out)
    assert outs[0] <= outs[1]
