"""Exact-out route choice (router_svc.quotes.choose_route_exact_out) on pools in the real layouts,
checked against the programs' exact-out math in common.dex."""

from __future__ import annotations

from fractions import Fraction

import pytest

from common.amounts import max_in
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.errors import QuoteError
from common.errors import InvalidArgument
from orderengine.v1 import router_pb2
from router_svc.pools import CpmmState, PoolStateT, Snapshot
from router_svc.quotes import NoRoute, choose_route_exact_out, quote_pool_out
from router_svc.servicer import validate
from tests.router_svc.test_quotes import SOL, USDC, snapshot


def _fresh(snap: Snapshot) -> Snapshot:
    return Snapshot(snap.slot, snap.clock, snap.pools, {}, 0)


def _program_in(state: PoolStateT, snap: Snapshot, amount_out: int, max_amount_in: int) -> tuple[int, int]:
    """(amount_in, amount_out) of the program's own exact-out swap of SOL → USDC with this bound."""
    if isinstance(state, CpmmState):
        zero_for_one = str(state.pool.token_0_mint) == str(SOL)
        r = cpmm.quote_exact_out(
            state.pool,
            state.config,
            state.vault_0,
            state.vault_1,
            amount_out,
            zero_for_one,
            snap.clock.unix_timestamp,
            max_amount_in=max_amount_in,
        )
        return r.amount_in, r.amount_out
    d = dlmm.quote_exact_out(
        state.pair,
        state.bin_arrays,
        amount_out,
        True,
        snap.clock.slot,
        snap.clock.unix_timestamp,
        snap.clock.epoch,
        max_amount_in=max_amount_in,
    )
    return d.amount_in, d.amount_out


def _pool(snap: Snapshot, address: str) -> PoolStateT:
    return next(p for p in snap.pools if str(p.address) == address)


@pytest.mark.parametrize(
    ("cpmm_price", "dlmm_price", "winner"),
    [(Fraction(152), Fraction(150), "raydium_cpmm"), (Fraction(148), Fraction(150), "meteora_dlmm")],
)
def test_the_venue_needing_the_least_input_wins(
    cpmm_price: Fraction, dlmm_price: Fraction, winner: str
) -> None:
    snap = snapshot(cpmm_price, dlmm_price)
    want = 150 * 10**6  # exactly 150 USDC
    choice = choose_route_exact_out(snap, str(SOL), str(USDC), want, 50)
    assert choice.exact_out and [leg.venue for leg in choice.legs] == [winner]
    needs = {q.venue: q.amount_in for q in choice.quotes}
    assert needs[winner] == min(needs.values()) and len(set(needs.values())) == 2
    leg = choice.legs[0]
    assert (leg.amount_out, leg.min_amount_out, choice.amount_out, choice.min_amount_out) == (want,) * 4
    # the leg's input is the program's own exact-out input, and its bound is that plus slippage, up
    assert _program_in(_pool(snap, leg.pool), snap, want, 2**64 - 1) == (leg.amount_in, want)
    assert leg.max_amount_in == -(-leg.amount_in * 10_050 // 10_000) == choice.max_amount_in
    # the program lands it under that bound, and refuses one unit below its own input
    assert _program_in(_pool(snap, leg.pool), snap, want, leg.max_amount_in) == (leg.amount_in, want)
    with pytest.raises(QuoteError) as refused:
        _program_in(_pool(snap, leg.pool), snap, want, leg.amount_in - 1)
    assert "Slippage" in refused.value.name or refused.value.name == "InsufficientInAmount"


def test_max_in_rounds_up_and_never_below_the_quote() -> None:
    assert max_in(1, 1) == 2  # 1.0001 rounds up
    assert max_in(10_000, 50) == 10_050
    assert max_in(10_001, 50) == 10_052  # 10051.005 rounds up
    assert max_in(2**64 - 1, 100) == 2**64 - 1  # capped at u64, still not below the quote
    for amount in (1, 7, 999, 10**9 + 3):
        assert max_in(amount, 1) >= amount


def test_a_split_whose_outputs_sum_exactly_and_need_the_least_input() -> None:
    # equal prices, shallow pools: one pool alone moves a lot, two legs much less
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    want = 6_000 * 10**6  # exactly 6000 USDC
    choice = choose_route_exact_out(snap, str(SOL), str(USDC), want, 100)
    assert len(choice.legs) == 2 and all(leg.exact_out for leg in choice.legs)
    assert sum(leg.amount_out for leg in choice.legs) == want == choice.amount_out
    total_in = sum(leg.amount_in for leg in choice.legs)
    assert total_in < min(q.amount_in for q in choice.quotes if not q.error)
    fresh = _fresh(snap)
    a, b = (_pool(snap, leg.pool) for leg in choice.legs)
    a_out = choice.legs[0].amount_out

    def total(x: int) -> int:
        return (
            quote_pool_out(a, fresh, str(SOL), x).amount_in
            + quote_pool_out(b, fresh, str(SOL), want - x).amount_in
        )

    # every leg is its pool's exact-out quote, and moving the split either way costs more input
    assert total(a_out) == total_in
    for step in (1, 1_000, 10**6, 10**8):
        assert total(a_out - step) >= total_in and total(a_out + step) >= total_in
    for leg in choice.legs:
        assert leg.max_amount_in == max_in(leg.amount_in, 100)
        assert _program_in(_pool(snap, leg.pool), snap, leg.amount_out, leg.max_amount_in) == (
            leg.amount_in,
            leg.amount_out,
        )
    assert choice.max_amount_in == sum(leg.max_amount_in for leg in choice.legs)


def test_small_exact_out_does_not_split() -> None:
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    assert len(choose_route_exact_out(snap, str(SOL), str(USDC), 10**6, 100).legs) == 1


def test_more_than_the_pools_hold_is_no_route() -> None:
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    with pytest.raises(NoRoute) as no_route:
        choose_route_exact_out(snap, str(SOL), str(USDC), 10**9 * 10**6, 100)
    assert not no_route.value.not_found and "amount out" in str(no_route.value)


@pytest.mark.parametrize(("amount_in", "amount_out", "field"), [(5, 7, "amount_out"), (0, 0, "amount_in")])
def test_a_request_gives_amount_in_or_amount_out(amount_in: int, amount_out: int, field: str) -> None:
    request = router_pb2.QuoteRequest(
        input_mint=str(SOL),
        output_mint=str(USDC),
        amount_in=amount_in,
        amount_out=amount_out,
        slippage_bps=50,
    )
    with pytest.raises(InvalidArgument) as refused:
        validate(request)
    assert refused.value.field == field
    validate(
        router_pb2.QuoteRequest(input_mint=str(SOL), output_mint=str(USDC), amount_out=7, slippage_bps=50)
    )
