"""Meteora DLMM: layouts, price math, the swap walk against real vectors and state, instructions."""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import synthetic
from common.dex.errors import LayoutError, QuoteError
from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from .conftest import DLMM_9T3, DLMM_9T3_AFTER, DLMM_B5, DlmmFixture, dlmm_fixture, pools, vectors_for

VECTORS = vectors_for("meteora_dlmm")
MEMO = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
CLOCK = (450000000, 1789000000, 1041)  # slot, unix_ts, epoch


def _quote(v: dict[str, Any], **kw: Any) -> dlmm.DlmmSwapResult:
    fx = dlmm_fixture(v["fixture"])
    c = v["clock"]
    return dlmm.quote_exact_in(
        fx.pair,
        fx.arrays,
        v["amount_in"],
        v["direction"] == "x_to_y",
        c["slot"],
        c["unix_timestamp"],
        c["epoch"],
        fx.fee_x,
        fx.fee_y,
        min_amount_out=v["minimum_amount_out"],
        **kw,
    )


def test_there_are_fifteen_dlmm_vectors() -> None:
    assert len(VECTORS) == 15


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_swap2_matches_program(v: dict[str, Any]) -> None:
    if v["result"] == "error":
        with pytest.raises(QuoteError) as exc:
            _quote(v)
        assert (exc.value.code, exc.value.name, exc.value.message) == (
            v["error"]["code"],
            v["error"]["name"],
            v["error"]["message"],
        )
        assert exc.value.venue == "meteora_dlmm"
        return
    r = _quote(v)
    ev = v["program_event"]
    assert r.amount_out == v["expected_amount_out"]
    assert r.amount_in == v["amount_in_debited"]
    assert r.amount_out_before_transfer_fee == ev["amount_out"]
    assert (r.fee, r.protocol_fee, r.host_fee) == (ev["fee"], ev["protocol_fee"], ev["host_fee"])
    assert r.fee_rate == ev["fee_bps"]
    assert (r.start_bin_id, r.active_id_after) == (ev["start_bin_id"], ev["end_bin_id"])
    assert (r.start_bin_id, r.active_id_after) == (v["active_id_before"], v["active_id_after"])
    assert r.lb_pair.active_id == v["active_id_after"]


@pytest.mark.parametrize("v", [v for v in VECTORS if v["result"] == "ok"], ids=lambda v: v["id"])
def test_swap2_with_the_instructions_bin_array_order(v: dict[str, Any]) -> None:
    fx = dlmm_fixture(v["fixture"])
    by_key = {dlmm.bin_array_pda(fx.program_id, fx.address, i): i for i in fx.arrays}
    order = [by_key[Pubkey.from_string(k)] for k in v["bin_arrays"]]
    assert _quote(v, bin_array_order=order).amount_out == v["expected_amount_out"]


def test_setup_swap_leaves_exactly_the_after_swap_state(
    dlmm_9t3: DlmmFixture, dlmm_9t3_after: DlmmFixture
) -> None:
    setup = pools()[DLMM_9T3_AFTER]["setup_swap"]
    c = setup["clock"]
    r = dlmm.quote_exact_in(
        dlmm_9t3.pair, dlmm_9t3.arrays, setup["amount_in"], True, c["slot"], c["unix_timestamp"], c["epoch"]
    )
    assert r.amount_out == pools()[DLMM_9T3_AFTER]["setup_swap_result"]["expected_amount_out"]
    assert dlmm.encode_lb_pair(r.lb_pair) == dlmm_9t3_after.raw["lb_pair"].data
    for index, role in ((-1, "bin_array_-1"), (0, "bin_array_0")):
        assert dlmm.encode_bin_array(r.bin_arrays[index]) == dlmm_9t3_after.raw[role].data
    oracle = dlmm.update_oracle(dlmm_9t3.oracle, dlmm_9t3.pair.active_id, c["unix_timestamp"])
    assert dlmm.encode_oracle(oracle) == dlmm_9t3_after.raw["oracle"].data
    # inputs are not mutated
    assert dlmm.encode_lb_pair(dlmm_9t3.pair) == dlmm_9t3.raw["lb_pair"].data
    assert dlmm.encode_bin_array(dlmm_9t3.arrays[0]) == dlmm_9t3.raw["bin_array_0"].data


@pytest.mark.parametrize("fixture_id", [DLMM_B5, DLMM_9T3, DLMM_9T3_AFTER])
def test_round_trips_are_exact(fixture_id: str) -> None:
    fx = dlmm_fixture(fixture_id)
    assert dlmm.encode_lb_pair(fx.pair) == fx.raw["lb_pair"].data
    assert dlmm.encode_oracle(fx.oracle) == fx.raw["oracle"].data
    for role in ("bin_array_-1", "bin_array_0"):
        raw = fx.raw[role]
        array = dlmm.decode_bin_array(raw.address, raw.owner, raw.data, fx.program_id)
        assert dlmm.encode_bin_array(array) == raw.data
        assert raw.address == dlmm.bin_array_pda(fx.program_id, fx.address, array.index)
        assert array.lb_pair == fx.address
    assert len(fx.raw["lb_pair"].data) == dlmm.LB_PAIR_SIZE == 904
    assert fx.oracle.length == 100


def test_fixture_fields_decode_to_known_values(dlmm_9t3: DlmmFixture, dlmm_9t3_after: DlmmFixture) -> None:
    p = dlmm_9t3.pair.parameters
    assert (p.function_type, p.collect_fee_mode, p.protocol_share) == (2, 1, 2000)
    assert dlmm_9t3.pair.activation_point == 448432755
    assert dlmm_9t3.pair.is_support_limit_order()
    assert dlmm_9t3.pair.fee_on_input(False) and not dlmm_9t3.pair.fee_on_input(True)
    assert dlmm_9t3_after.pair.v_parameters.volatility_accumulator == 130000
    bin_12 = dlmm_9t3_after.arrays[-1].get_bin(-12)
    assert (bin_12.open_order_amount, bin_12.total_processing_order_amount, bin_12.order_age) == (0, 10**9, 1)
    assert dlmm_9t3.arrays[0].get_bin(5).limit_order_ask_side == 1


def test_bitmap_extension_round_trip_and_search() -> None:
    pair = Pubkey.new_unique()
    pos = [0] * 12
    neg = [0] * 12
    pos[0] |= 1 << 3  # bin array 515
    pos[2] |= 1 << 511  # bin array 2047
    neg[1] |= 1 << 7  # bin array -(1024 + 7) - 1 = -1032
    ext = dlmm.BinArrayBitmapExtension(pair, tuple(pos), tuple(neg))
    program = Pubkey.new_unique()
    data = dlmm.encode_bin_array_bitmap_extension(ext)
    assert dlmm.decode_bin_array_bitmap_extension(pair, program, data, program) == ext
    assert ext.bit(515) and ext.bit(2047) and ext.bit(-1032) and not ext.bit(516)
    assert ext.next_bin_array_index_with_liquidity(False, 512) == (515, True)
    assert ext.next_bin_array_index_with_liquidity(False, 516) == (2047, True)
    assert ext.next_bin_array_index_with_liquidity(True, 2046) == (515, True)
    assert ext.next_bin_array_index_with_liquidity(True, 514) == (511, False)
    assert ext.next_bin_array_index_with_liquidity(True, -513) == (-1032, True)
    assert ext.next_bin_array_index_with_liquidity(False, -1100) == (-1032, True)
    assert ext.next_bin_array_index_with_liquidity(False, -1031) == (-512, False)
    with pytest.raises(QuoteError) as exc:
        ext.next_bin_array_index_with_liquidity(False, 2048)
    assert exc.value.code == 6037


def test_decoders_reject_wrong_owner_size_and_discriminator(dlmm_b5: DlmmFixture) -> None:
    cases = [
        ("lb_pair", dlmm.decode_lb_pair, "LbPair"),
        ("bin_array_0", dlmm.decode_bin_array, "BinArray"),
        ("oracle", dlmm.decode_oracle, "Oracle"),
    ]
    for role, decode, name in cases:
        raw = dlmm_b5.raw[role]
        with pytest.raises(LayoutError, match=f"{name} {raw.address}: owner"):
            decode(raw.address, TOKEN_PROGRAM_ID, raw.data, dlmm_b5.program_id)
        with pytest.raises(LayoutError, match=f"{name} {raw.address}: size"):
            decode(raw.address, raw.owner, raw.data[:20], dlmm_b5.program_id)
        with pytest.raises(LayoutError, match=f"{name} {raw.address}: discriminator"):
            decode(raw.address, raw.owner, dlmm.DISC_SWAP2 + raw.data[8:], dlmm_b5.program_id)
    # a bin array is not a pair
    raw = dlmm_b5.raw["bin_array_0"]
    with pytest.raises(LayoutError, match="discriminator"):
        dlmm.decode_lb_pair(raw.address, raw.owner, raw.data, dlmm_b5.program_id)


def test_price_is_bit_exact_with_the_stored_bin_prices() -> None:
    checked = 0
    for fixture_id in (DLMM_B5, DLMM_9T3):
        fx = dlmm_fixture(fixture_id)
        for array in fx.arrays.values():
            for pos, b in enumerate(array.bins):
                if b.price:
                    assert b.price == dlmm.get_price_from_id(array.lower_bin_id + pos, fx.pair.bin_step)
                    checked += 1
    assert checked > 100
    assert dlmm.get_price_from_id(0, 10) == 1 << 64
    assert dlmm.pow_q64((1 << 64) + 1, 0x80000) is None
    with pytest.raises(QuoteError):
        dlmm.get_price_from_id(443637, 100)


@settings(max_examples=80, deadline=None)
@given(bin_id=st.integers(-40000, 40000), bin_step=st.sampled_from([1, 2, 5, 10, 25, 80, 100, 250]))
def test_price_is_monotonic_in_bin_id(bin_id: int, bin_step: int) -> None:
    try:
        p0 = dlmm.get_price_from_id(bin_id, bin_step)
        p1 = dlmm.get_price_from_id(bin_id + 1, bin_step)
    except QuoteError:
        return
    assert p0 <= p1  # truncation can tie neighbours at the ends of the Q64.64 range
    if 1 << 32 < p0 and p1 < 1 << 96:
        assert p0 < p1


def test_bin_array_bookkeeping(dlmm_b5: DlmmFixture) -> None:
    assert [dlmm.bin_array_index(b) for b in (-71, -70, -1, 0, 69, 70)] == [-2, -1, -1, 0, 0, 1]
    assert dlmm.bin_id_range(-1) == (-70, -1)
    assert dlmm.bin_arrays_for_swap(dlmm_b5.pair, True, 3) == [0, -1]
    assert dlmm.bin_arrays_for_swap(dlmm_b5.pair, False, 3) == [0]
    moved = dataclasses.replace(dlmm_b5.pair, active_id=-5)
    assert dlmm.bin_arrays_for_swap(moved, False, 3) == [-1, 0]
    assert dlmm.bin_arrays_for_swap(moved, True, 1) == [-1]


def test_missing_or_misordered_bin_array_fails_like_the_program(dlmm_b5: DlmmFixture) -> None:
    slot, ts, epoch = CLOCK
    args = (100_000_000, True, slot, ts, epoch, dlmm_b5.fee_x, dlmm_b5.fee_y)
    with pytest.raises(QuoteError) as exc:
        dlmm.quote_exact_in(dlmm_b5.pair, {0: dlmm_b5.arrays[0]}, *args)
    assert (exc.value.code, exc.value.name) == (3005, "AccountNotEnoughKeys")
    with pytest.raises(QuoteError) as exc:
        dlmm.quote_exact_in(dlmm_b5.pair, dlmm_b5.arrays, *args, bin_array_order=[-1, 0])
    assert exc.value.code == 3005
    ok = dlmm.quote_exact_in(dlmm_b5.pair, dlmm_b5.arrays, *args, bin_array_order=[0, 0, -1])
    assert ok.amount_out == dlmm.quote_exact_in(dlmm_b5.pair, dlmm_b5.arrays, *args).amount_out


def test_pair_status_and_activation(dlmm_b5: DlmmFixture, dlmm_9t3: DlmmFixture) -> None:
    slot, ts, epoch = CLOCK
    with pytest.raises(QuoteError) as exc:
        dlmm.quote_exact_in(
            dataclasses.replace(dlmm_b5.pair, status=1), dlmm_b5.arrays, 10**6, True, slot, ts, epoch
        )
    assert exc.value.code == 6042
    # PermissionlessV2 pairs ignore the activation point; customizable ones honour it
    future = dataclasses.replace(dlmm_b5.pair, activation_point=slot + 1)
    assert dlmm.quote_exact_in(future, dlmm_b5.arrays, 10**6, True, slot, ts, epoch).amount_out > 0
    act = dlmm_9t3.pair.activation_point
    assert dlmm.quote_exact_in(dlmm_9t3.pair, dlmm_9t3.arrays, 10**6, True, act, ts, epoch).amount_out > 0
    with pytest.raises(QuoteError):
        dlmm.quote_exact_in(dlmm_9t3.pair, dlmm_9t3.arrays, 10**6, True, act - 1, ts, epoch)


def test_host_fee_comes_out_of_the_protocol_fee(dlmm_9t3: DlmmFixture) -> None:
    slot, ts, epoch = CLOCK
    plain = dlmm.quote_exact_in(dlmm_9t3.pair, dlmm_9t3.arrays, 10**9, False, slot, ts, epoch)
    hosted = dlmm.quote_exact_in(dlmm_9t3.pair, dlmm_9t3.arrays, 10**9, False, slot, ts, epoch, host_fee=True)
    assert hosted.amount_out == plain.amount_out
    assert hosted.host_fee > 0
    assert hosted.protocol_fee + hosted.host_fee == plain.protocol_fee
    assert hosted.lb_pair.protocol_fee_y == dlmm_9t3.pair.protocol_fee_y + hosted.protocol_fee
    # observed with the lb_clmm 0.12 binary: the host's 400200 leave the Y reserve
    assert (hosted.host_fee, hosted.amount_out) == (400200, 989005994)
    assert hosted.reserve_deltas == (-989005994, 10**9 - 400200)
    assert plain.reserve_deltas == (-989005994, 10**9)


@pytest.mark.parametrize("fixture_id", [DLMM_B5, DLMM_9T3, DLMM_9T3_AFTER])
@pytest.mark.parametrize("swap_for_y", [True, False])
@pytest.mark.parametrize("amount_out", [1, 10**4, 10**8, 10**10])
def test_exact_out_delivers_and_exact_in_agrees(fixture_id: str, swap_for_y: bool, amount_out: int) -> None:
    fx = dlmm_fixture(fixture_id)
    slot, ts, epoch = 449990013, 1788990005, 1041
    try:
        r = dlmm.quote_exact_out(
            fx.pair, fx.arrays, amount_out, swap_for_y, slot, ts, epoch, fx.fee_x, fx.fee_y
        )
    except QuoteError as exc:
        assert exc.code in (6036, 6039, 6057)
        return
    assert r.amount_out >= amount_out
    back = dlmm.quote_exact_in(
        fx.pair, fx.arrays, r.amount_in, swap_for_y, slot, ts, epoch, fx.fee_x, fx.fee_y
    )
    assert back.amount_out >= amount_out
    with pytest.raises(QuoteError) as err:
        dlmm.quote_exact_out(
            fx.pair,
            fx.arrays,
            amount_out,
            swap_for_y,
            slot,
            ts,
            epoch,
            fx.fee_x,
            fx.fee_y,
            max_amount_in=r.amount_in - 1,
        )
    assert err.value.code in (6003, 6039, 6057, 6104)


# -- synthetic pairs ---------------------------------------------------------------------------


def _synthetic(bins_each_side: int = 60, **kw: Any) -> tuple[Pubkey, dlmm.LbPair, dict[int, dlmm.BinArray]]:
    program = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    mint_x, mint_y = Pubkey.new_unique(), Pubkey.new_unique()
    accounts = synthetic.make_dlmm_pair(
        program, mint_x, mint_y, 9, 6, Fraction(150), 10, 10**15, 150 * 10**12, bins_each_side, **kw
    )
    address = next(iter(accounts))
    owner, data, _ = accounts[address]
    pair = dlmm.decode_lb_pair(address, owner, data, program)
    arrays = {}
    for key, (o, d, _) in accounts.items():
        if d[:8] == dlmm.DISC_BIN_ARRAY:
            a = dlmm.decode_bin_array(key, o, d, program)
            arrays[a.index] = a
    return address, pair, arrays


def test_synthetic_pair_walks_fifty_bins() -> None:
    _, pair, arrays = _synthetic()
    slot, ts, epoch = CLOCK
    # each bin above holds ~1.65e13 X at ~0.15 Y per X: 1.4e14 Y crosses about 55 of them
    r = dlmm.quote_exact_in(pair, arrays, 14 * 10**13, False, slot, ts, epoch)
    assert 50 <= r.bins_crossed < 60
    assert len(r.bins) == r.bins_crossed + 1
    # price moves against the taker, bin by bin
    prices = [f.price for f in r.bins]
    assert prices == sorted(prices)
    assert r.fee_rate == min(
        pair.base_fee_rate() + pair.variable_fee_rate(r.lb_pair.v_parameters.volatility_accumulator), 10**8
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.integers(1, 10**16), b=st.integers(1, 10**16), swap_for_y=st.booleans())
def test_output_is_monotonic_and_bounded_by_holdings(a: int, b: int, swap_for_y: bool) -> None:
    fx = dlmm_fixture(DLMM_9T3)
    slot, ts, epoch = CLOCK
    holdings = sum(
        (bn.amount_y if swap_for_y else bn.amount_x) + sum(bn.limit_order_amounts(swap_for_y))
        for arr in fx.arrays.values()
        for bn in arr.bins
    )
    outs = []
    for amount in sorted((a, b)):
        try:
            r = dlmm.quote_exact_in(
                fx.pair, fx.arrays, amount, swap_for_y, slot, ts, epoch, fx.fee_x, fx.fee_y
            )
        except QuoteError as exc:
            assert exc.code in (6036, 6039)
            outs.append(0 if exc.code == 6039 else None)
            continue
        assert r.amount_out <= r.amount_out_before_transfer_fee <= holdings
        assert r.fee >= r.protocol_fee >= 0
        outs.append(r.amount_out)
    if outs[0] is not None and outs[1] is not None:
        assert outs[0] <= outs[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.integers(0, (1 << 64) - 1),
    swap_for_y=st.booleans(),
    elapsed=st.integers(0, 10**6),
    fixture_id=st.sampled_from([DLMM_B5, DLMM_9T3, DLMM_9T3_AFTER]),
    exact_out=st.booleans(),
)
def test_quoting_raises_only_quote_error(
    amount: int, swap_for_y: bool, elapsed: int, fixture_id: str, exact_out: bool
) -> None:
    fx = dlmm_fixture(fixture_id)
    ts = fx.pair.v_parameters.last_update_timestamp + elapsed
    fn = dlmm.quote_exact_out if exact_out else dlmm.quote_exact_in
    try:
        fn(fx.pair, fx.arrays, amount, swap_for_y, 450000000, ts, 1041, fx.fee_x, fx.fee_y)
    except QuoteError:
        pass


# -- instructions ----------------------------------------------------------------------------


@pytest.mark.parametrize("with_optional", [False, True])
def test_swap2_instruction(dlmm_b5: DlmmFixture, with_optional: bool) -> None:
    p = dlmm_b5.pair
    program = dlmm_b5.program_id
    user, uin, uout = (Pubkey.new_unique() for _ in range(3))
    ext = dlmm.bin_array_bitmap_extension_pda(program, dlmm_b5.address) if with_optional else None
    host = Pubkey.new_unique() if with_optional else None
    arrays = [dlmm.bin_array_pda(program, dlmm_b5.address, i) for i in (0, -1)]
    ix = dlmm.swap2_ix(
        program,
        dlmm_b5.address,
        ext,
        p.reserve_x,
        p.reserve_y,
        uin,
        uout,
        p.token_x_mint,
        p.token_y_mint,
        p.oracle,
        host,
        user,
        TOKEN_2022_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        MEMO,
        arrays,
        1_000_000,
        990_000,
    )
    assert bytes(ix.data) == bytes([65, 75, 63, 76, 235, 91, 91, 136]) + (1_000_000).to_bytes(8, "little") + (
        990_000
    ).to_bytes(8, "little") + bytes(4)
    event_authority = Pubkey.find_program_address([b"__event_authority"], program)[0]
    expected = [
        (dlmm_b5.address, False, True),
        (ext, False, True) if ext else (program, False, False),
        (p.reserve_x, False, True),
        (p.reserve_y, False, True),
        (uin, False, True),
        (uout, False, True),
        (p.token_x_mint, False, False),
        (p.token_y_mint, False, False),
        (p.oracle, False, True),
        (host, False, True) if host else (program, False, False),
        (user, True, False),
        (TOKEN_2022_PROGRAM_ID, False, False),
        (TOKEN_PROGRAM_ID, False, False),
        (MEMO, False, False),
        (event_authority, False, False),
        (program, False, False),
        (arrays[0], False, True),
        (arrays[1], False, True),
    ]
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == expected
    parsed = dlmm.parse_swap2(bytes(ix.data), [m.pubkey for m in ix.accounts])
    assert parsed == dlmm.Swap2Ix(
        program_id=program,
        lb_pair=dlmm_b5.address,
        bin_array_bitmap_extension=ext,
        reserve_x=p.reserve_x,
        reserve_y=p.reserve_y,
        user_token_in=uin,
        user_token_out=uout,
        token_x_mint=p.token_x_mint,
        token_y_mint=p.token_y_mint,
        oracle=p.oracle,
        host_fee_in=host,
        user=user,
        token_x_program=TOKEN_2022_PROGRAM_ID,
        token_y_program=TOKEN_PROGRAM_ID,
        memo_program=MEMO,
        event_authority=event_authority,
        amount_in=1_000_000,
        min_amount_out=990_000,
        bin_arrays=tuple(arrays),
    )
    rebuilt = dlmm.swap2_ix(
        parsed.program_id,
        parsed.lb_pair,
        parsed.bin_array_bitmap_extension,
        parsed.reserve_x,
        parsed.reserve_y,
        parsed.user_token_in,
        parsed.user_token_out,
        parsed.token_x_mint,
        parsed.token_y_mint,
        parsed.oracle,
        parsed.host_fee_in,
        parsed.user,
        parsed.token_x_program,
        parsed.token_y_program,
        parsed.memo_program,
        parsed.bin_arrays,
        parsed.amount_in,
        parsed.min_amount_out,
    )
    assert rebuilt == ix
    out = dlmm.swap_exact_out2_ix(
        program, dlmm_b5.address, None, p.reserve_x, p.reserve_y, uin, uout, p.token_x_mint, p.token_y_mint,
        p.oracle, None, user, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, MEMO, arrays, 5, 7,
    )  # fmt: skip
    assert dlmm.parse_swap2(bytes(out.data), [m.pubkey for m in out.accounts]).exact_out
    with pytest.raises(ValueError):
        dlmm.parse_swap2(bytes(ix.data)[:-1], [m.pubkey for m in ix.accounts])
    with pytest.raises(ValueError):
        dlmm.parse_swap2(bytes(ix.data), [m.pubkey for m in ix.accounts][:10])


def test_synthetic_pair_accounts_decode_and_round_trip() -> None:
    from common.dex.spl_token import decode_mint, decode_token_account

    program = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    mint_x, mint_y = Pubkey.new_unique(), Pubkey.new_unique()
    accounts = synthetic.make_dlmm_pair(
        program, mint_x, mint_y, 9, 6, Fraction(150), 10, 10**12, 10**11, 60, "s"
    )
    address = next(iter(accounts))
    assert address == synthetic.dlmm_pair_address(program, mint_x, mint_y, 10, 10_000, "s")
    pair = dlmm.decode_lb_pair(address, *accounts[address][:2], program)
    assert dlmm.encode_lb_pair(pair) == accounts[address][1]
    price = dlmm.get_price_from_id(pair.active_id, 10)
    assert abs(Fraction(price, 1 << 64) - Fraction(150 * 10**6, 10**9)) < Fraction(15, 10**5)  # within a bin
    total_x = total_y = 0
    for index in set(dlmm.bin_arrays_for_swap(pair, True, 10) + dlmm.bin_arrays_for_swap(pair, False, 10)):
        key = dlmm.bin_array_pda(program, address, index)
        array = dlmm.decode_bin_array(key, *accounts[key][:2], program)
        total_x += sum(b.amount_x for b in array.bins)
        total_y += sum(b.amount_y for b in array.bins)
    assert (total_x, total_y) == (10**12, 10**11)
    rx = decode_token_account(pair.reserve_x, *accounts[pair.reserve_x][:2])
    ry = decode_token_account(pair.reserve_y, *accounts[pair.reserve_y][:2])
    assert (rx.amount, ry.amount, rx.owner) == (10**12, 10**11, address)
    oracle = dlmm.decode_oracle(pair.oracle, *accounts[pair.oracle][:2], program)
    assert oracle.length == 100 and oracle.active_size == 0
    assert decode_mint(mint_x, *accounts[mint_x][:2]).decimals == 9


def test_synthetic_pair_far_from_parity_uses_the_bitmap_extension() -> None:
    program = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    mint_x, mint_y = Pubkey.new_unique(), Pubkey.new_unique()
    # bin step 1 at a price of 40: active bin ~36890, bin array ~527, beyond the pair's bitmap
    accounts = synthetic.make_dlmm_pair(
        program, mint_x, mint_y, 6, 6, Fraction(40), 1, 10**12, 4 * 10**13, 100
    )
    address = next(iter(accounts))
    pair = dlmm.decode_lb_pair(address, *accounts[address][:2], program)
    ext_key = dlmm.bin_array_bitmap_extension_pda(program, address)
    ext = dlmm.decode_bin_array_bitmap_extension(ext_key, *accounts[ext_key][:2], program)
    arrays = {}
    for key, (o, d, _) in accounts.items():
        if d[:8] == dlmm.DISC_BIN_ARRAY:
            a = dlmm.decode_bin_array(key, o, d, program)
            arrays[a.index] = a
    assert min(arrays) > 511 and all(ext.bit(i) for i in arrays)
    slot, ts, epoch = CLOCK
    with pytest.raises(QuoteError) as exc:
        dlmm.quote_exact_in(pair, arrays, 10, True, slot, ts, epoch)
    assert exc.value.code == 6036
    r = dlmm.quote_exact_in(pair, arrays, 10, True, slot, ts, epoch, bitmap_extension=ext)
    assert r.amount_out > 0
    active_index = dlmm.bin_array_index(pair.active_id)
    below = sorted((i for i in arrays if i <= active_index), reverse=True)
    assert dlmm.bin_arrays_for_swap(pair, True, 10, ext) == below
    assert dlmm.bin_arrays_for_swap(pair, True, 10) == []


def test_error_lookup() -> None:
    assert dlmm.error_name(6003) == "ExceededAmountSlippageTolerance"
    assert dlmm.error_message(6039) == "Insufficient amount in for minimum out"
    assert dlmm.error_name(6036) == "BitmapExtensionAccountIsNotProvided"
    assert dlmm.error_name(3005) == "AccountNotEnoughKeys"  # Anchor's, inside the program
    assert dlmm.error_name(6110) == "InvalidCollectFeeMode" and dlmm.error_name(6111) is None
    assert dlmm.SLIPPAGE_ERROR_CODES == {6003, 6057, 6104}
    assert sorted(dlmm.PROGRAM_ERRORS) == list(range(6000, 6111))  # lb_clmm 0.12 numbers them densely
    for code, (name, message) in dlmm.PROGRAM_ERRORS.items():
        err = dlmm._err(name)
        assert (err.code, err.name, err.message, err.venue) == (code, name, message, "meteora_dlmm")


@functools.cache
def _deep_pair() -> tuple[dlmm.LbPair, dict[int, dlmm.BinArray], int, int]:
    """A synthetic pair 150 bins deep each way (several bin arrays) and its holdings of X and Y."""
    _, pair, arrays = _synthetic(bins_each_side=150)
    held_x = sum(bn.amount_x for arr in arrays.values() for bn in arr.bins)
    held_y = sum(bn.amount_y for arr in arrays.values() for bn in arr.bins)
    return pair, arrays, held_x, held_y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.integers(1, 10**16), b=st.integers(1, 10**16), swap_for_y=st.booleans())
def test_output_is_monotonic_and_bounded_across_many_bins(a: int, b: int, swap_for_y: bool) -> None:
    """Walks across many bins and bin arrays: more in never gives less out, and the output never
    exceeds what the pair holds of the output token; running out of bins is the program's error."""
    pair, arrays, held_x, held_y = _deep_pair()
    slot, ts, epoch = CLOCK
    outs: list[int | None] = []
    for amount in sorted((a, b)):
        try:
            r = dlmm.quote_exact_in(pair, arrays, amount, swap_for_y, slot, ts, epoch)
        except QuoteError as exc:
            assert exc.code in (6036, 6039)  # past the last bin array / nothing comes out
            outs.append(0 if exc.code == 6039 else None)
            continue
        assert 0 < r.amount_out <= (held_y if swap_for_y else held_x)
        outs.append(r.amount_out)
    if outs[0] is not None and outs[1] is not None:
        assert outs[0] <= outs[1]
