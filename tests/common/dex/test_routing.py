"""Exact integer split of an order across two venues."""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex import synthetic
from common.dex.errors import QuoteError
from common.dex.routing import best_split

from .conftest import cpmm_fixture


def constant_product(x: int, y: int, fee_bps: int, min_out: int = 1) -> Callable[[int], int]:
    def f(amount: int) -> int:
        net = amount * (10_000 - fee_bps) // 10_000
        out = net * y // (x + net)
        if out < min_out:
            raise QuoteError(6039, "InsufficientOutAmount", "too small", "test")
        return out

    return f


def brute_force(f_a: Callable[[int], int], f_b: Callable[[int], int], total: int) -> int:
    best = 0
    for x in range(total + 1):
        try:
            a = f_a(x) if x else 0
            b = f_b(total - x) if total - x else 0
        except QuoteError:
            continue
        best = max(best, a + b)
    return best


def test_split_matches_brute_force_on_small_pools() -> None:
    f_a = constant_product(1_000, 1_000, 30)
    f_b = constant_product(700, 800, 25)
    with pytest.raises(QuoteError):  # neither pool gives anything for 1 unit
        best_split(f_a, f_b, 1)
    for total in (2, 5, 17, 100, 333, 999):
        split = best_split(f_a, f_b, total)
        assert split.amount_a + split.amount_b == total
        assert split.amount_out == brute_force(f_a, f_b, total)


def test_split_near_the_analytic_optimum() -> None:
    f_a = constant_product(10**12, 10**12, 30)
    f_b = constant_product(5 * 10**11, 5 * 10**11, 25)
    total = 10**11
    a, b, out = best_split(f_a, f_b, total)
    assert a + b == total and 0 < a < total
    for x in range(a - 300, a + 300):
        assert f_a(x) + f_b(total - x) <= out


def test_single_venue_when_split_gain_does_not_pay() -> None:
    f_a = constant_product(10**12, 10**12, 30)
    f_b = constant_product(5 * 10**11, 5 * 10**11, 25)
    total = 10**9
    split = best_split(f_a, f_b, total)
    assert split.amount_a and split.amount_b
    gain = split.amount_out - max(f_a(total), f_b(total))
    assert gain > 0
    single = best_split(f_a, f_b, total, extra_cost_out=gain)
    assert (single.amount_a, single.amount_b) in ((total, 0), (0, total))
    assert best_split(f_a, f_b, total, extra_cost_out=gain - 1) == split


def test_venue_that_cannot_quote() -> None:
    def broken(amount: int) -> int:
        raise QuoteError(6036, "BitmapExtensionAccountIsNotProvided", "no", "test")

    good = constant_product(10**9, 10**9, 30)
    assert tuple(best_split(broken, good, 10**6)) == (0, 10**6, good(10**6))
    assert tuple(best_split(good, broken, 10**6)) == (10**6, 0, good(10**6))
    with pytest.raises(QuoteError):
        best_split(broken, broken, 10**6)
    with pytest.raises(ValueError):
        best_split(good, good, 0)


def test_resolution_limits_quote_calls() -> None:
    calls = 0
    base = constant_product(10**12, 10**12, 30)

    def counted(amount: int) -> int:
        nonlocal calls
        calls += 1
        return base(amount)

    best_split(counted, constant_product(10**12, 2 * 10**12, 30), 10**10, resolution=10**6)
    assert calls < 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xa=st.integers(10**3, 10**15),
    ya=st.integers(10**3, 10**15),
    xb=st.integers(10**3, 10**15),
    yb=st.integers(10**3, 10**15),
    fa=st.integers(0, 100),
    fb=st.integers(0, 100),
    total=st.integers(1, 10**14),
)
def test_split_is_never_worse_than_a_single_venue(
    xa: int, ya: int, xb: int, yb: int, fa: int, fb: int, total: int
) -> None:
    f_a, f_b = constant_product(xa, ya, fa), constant_product(xb, yb, fb)
    singles = []
    for f in (f_a, f_b):
        try:
            singles.append(f(total))
        except QuoteError:
            pass
    try:
        split = best_split(f_a, f_b, total)
    except QuoteError:
        assert not singles
        return
    assert split.amount_a + split.amount_b == total
    assert split.amount_out >= max(singles)
    got = (f_a(split.amount_a) if split.amount_a else 0) + (f_b(split.amount_b) if split.amount_b else 0)
    assert got == split.amount_out


def test_split_across_real_venues() -> None:
    """The fixture CPMM pool (wSOL/pump) against a synthetic DLMM pair of the same mints."""
    fx = cpmm_fixture()
    program = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    r0, r1 = fx.pool.reserves(fx.vault_0, fx.vault_1)
    price = Fraction(r1, 10**6) / Fraction(r0, 10**9)  # token_1 per token_0, in whole tokens
    accounts = synthetic.make_dlmm_pair(
        program, fx.pool.token_0_mint, fx.pool.token_1_mint, 9, 6, price, 10, r0 // 2, r1 // 2, 60
    )
    address = next(iter(accounts))
    pair = dlmm.decode_lb_pair(address, *accounts[address][:2], program)
    arrays = {
        a.index: a
        for a in (
            dlmm.decode_bin_array(k, o, d, program)
            for k, (o, d, _) in accounts.items()
            if d[:8] == dlmm.DISC_BIN_ARRAY
        )
    }

    def f_cpmm(amount: int) -> int:
        return cpmm.quote_exact_in(
            fx.pool, fx.config, fx.vault_0, fx.vault_1, amount, True, 1789000000
        ).amount_out

    def f_dlmm(amount: int) -> int:
        return dlmm.quote_exact_in(pair, arrays, amount, True, 450000000, 1789000000, 1041).amount_out

    total = 50 * 10**9
    split = best_split(f_cpmm, f_dlmm, total)
    assert 0 < split.amount_a < total
    assert split.amount_out >= max(f_cpmm(total), f_dlmm(total))
    assert split.amount_out == f_cpmm(split.amount_a) + f_dlmm(split.amount_b)


@functools.cache
def _real_venues() -> tuple[Callable[[int], int], Callable[[int], int]]:
    """The fixture CPMM pool (its real state) and a synthetic DLMM pair of the same mints at the same
    price, as quote functions of the amount of token_0 (wSOL) in."""
    fx = cpmm_fixture()
    program = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    r0, r1 = fx.pool.reserves(fx.vault_0, fx.vault_1)
    price = Fraction(r1, 10**6) / Fraction(r0, 10**9)
    accounts = synthetic.make_dlmm_pair(
        program, fx.pool.token_0_mint, fx.pool.token_1_mint, 9, 6, price, 10, r0 // 4, r1 // 4, 80
    )
    address = next(iter(accounts))
    pair = dlmm.decode_lb_pair(address, *accounts[address][:2], program)
    arrays = {
        a.index: a
        for a in (
            dlmm.decode_bin_array(k, o, d, program)
            for k, (o, d, _) in accounts.items()
            if d[:8] == dlmm.DISC_BIN_ARRAY
        )
    }

    def f_cpmm(amount: int) -> int:
        return cpmm.quote_exact_in(
            fx.pool, fx.config, fx.vault_0, fx.vault_1, amount, True, 1789000000, fx.fee_0, fx.fee_1, 1041
        ).amount_out

    def f_dlmm(amount: int) -> int:
        return dlmm.quote_exact_in(pair, arrays, amount, True, 450000000, 1789000000, 1041).amount_out

    return f_cpmm, f_dlmm


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(total=st.integers(1, 10**14), extra_cost=st.integers(0, 10**6))
def test_split_on_the_real_venue_math_is_never_worse_than_a_single_venue(total: int, extra_cost: int) -> None:
    """The exact CPMM and DLMM quotes as the two curves: the chosen allocation is exactly what the
    two legs deliver, and it beats each single venue (by more than the extra cost when it splits)."""
    f_cpmm, f_dlmm = _real_venues()
    singles = []
    for f in (f_cpmm, f_dlmm):
        try:
            singles.append(f(total))
        except QuoteError:
            pass
    try:
        split = best_split(f_cpmm, f_dlmm, total, extra_cost_out=extra_cost)
    except QuoteError:
        assert not singles
        return
    assert split.amount_a + split.amount_b == total
    got_a = f_cpmm(split.amount_a) if split.amount_a else 0
    got_b = f_dlmm(split.amount_b) if split.amount_b else 0
    assert got_a + got_b == split.amount_out
    assert split.amount_out >= max(singles)
    if split.amount_a and split.amount_b:
        assert split.amount_out > max(singles) + extra_cost
