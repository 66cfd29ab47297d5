"""Route choice on pools built in the real layouts (common.dex.synthetic), quoted with exact math."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from solders.pubkey import Pubkey

from common.amounts import min_out
from common.chain import AccountData
from common.dex import synthetic
from common.dex.spl_token import NATIVE_MINT
from router_svc.pools import Clock, Snapshot, decode_pool
from router_svc.quotes import ZERO_OUTPUT, NoRoute, choose_route, quote_pool

CPMM = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
DLMM = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
USDC = Pubkey.from_string("RAuBvWxbUsC8HbmVmSPCcZGqPBMvFx17ChJP3ZiiHCb")
SOL = NATIVE_MINT


def _accounts(raw: dict) -> dict[Pubkey, AccountData]:  # type: ignore[type-arg]
    return {k: AccountData(lamports, owner, data, False) for k, (owner, data, lamports) in raw.items()}


def snapshot(
    cpmm_price: Fraction,
    dlmm_price: Fraction,
    cpmm_sol: int = 20_000,
    dlmm_sol: int = 20_000,
) -> Snapshot:
    mint_0, mint_1 = sorted([SOL, USDC], key=bytes)
    sol_first = mint_0 == SOL
    r_sol = cpmm_sol * 10**9
    r_usdc = int(cpmm_sol * cpmm_price) * 10**6
    cp = synthetic.make_cpmm_pool(
        CPMM,
        mint_0,
        mint_1,
        9 if sol_first else 6,
        6 if sol_first else 9,
        r_sol if sol_first else r_usdc,
        r_usdc if sol_first else r_sol,
        seed="t-cpmm",
    )
    dl = synthetic.make_dlmm_pair(
        DLMM,
        SOL,
        USDC,
        9,
        6,
        dlmm_price,
        10,
        liquidity_x=dlmm_sol * 10**9,
        liquidity_y=int(dlmm_sol * dlmm_price) * 10**6,
        bins_each_side=60,
        seed="t-dlmm",
    )
    cp_addr, dl_addr = next(iter(cp)), next(iter(dl))
    accounts = {**_accounts(cp), **_accounts(dl)}
    pools = [
        decode_pool("raydium_cpmm", cp_addr, CPMM, accounts),
        decode_pool("meteora_dlmm", dl_addr, DLMM, accounts),
    ]
    return Snapshot(1000, Clock(1000, 1, int(time.time())), pools, {}, time.monotonic())


def test_cpmm_wins_when_it_pays_more() -> None:
    snap = snapshot(Fraction(152), Fraction(150))
    choice = choose_route(snap, str(SOL), str(USDC), 10**9, 50)
    assert [leg.venue for leg in choice.legs] == ["raydium_cpmm"]
    by_venue = {q.venue: q.amount_out for q in choice.quotes}
    assert by_venue["raydium_cpmm"] > by_venue["meteora_dlmm"]
    assert choice.amount_out == by_venue["raydium_cpmm"]
    assert choice.min_amount_out == min_out(choice.amount_out, 50)


def test_dlmm_wins_when_it_pays_more() -> None:
    snap = snapshot(Fraction(148), Fraction(150))
    choice = choose_route(snap, str(SOL), str(USDC), 10**9, 50)
    assert [leg.venue for leg in choice.legs] == ["meteora_dlmm"]
    by_venue = {q.venue: q.amount_out for q in choice.quotes}
    assert by_venue["meteora_dlmm"] > by_venue["raydium_cpmm"]


def test_split_wins_for_a_large_order_on_shallow_pools() -> None:
    # equal prices, shallow pools: one pool alone moves its price a lot, two halves much less
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    amount = 40 * 10**9
    choice = choose_route(snap, str(SOL), str(USDC), amount, 100)
    assert len(choice.legs) == 2
    assert sum(leg.amount_in for leg in choice.legs) == amount
    single_best = max(q.amount_out for q in choice.quotes if not q.error)
    assert choice.amount_out > single_best
    # each leg's output is exactly what that pool quotes for the leg's input
    for leg in choice.legs:
        pool = next(p for p in snap.pools if str(p.address) == leg.pool)
        assert (
            quote_pool(
                pool, Snapshot(snap.slot, snap.clock, snap.pools, {}, 0), str(SOL), leg.amount_in
            ).amount_out
            == leg.amount_out
        )
        assert leg.min_amount_out == min_out(leg.amount_out, 100)


def test_an_amount_that_buys_nothing_is_refused_with_a_reason() -> None:
    snap = snapshot(Fraction(150), Fraction(150))
    # 1 lamport of SOL is worth 0.00000015 USDC: both pools pay 0 base units
    # (each program refuses such a swap: CPMM RequireGtViolated, DLMM InsufficientOutAmount)
    errors = [quote_pool(p, snap, str(SOL), 1).error for p in snap.pools]
    assert all(e.startswith(ZERO_OUTPUT) for e in errors), errors
    with pytest.raises(NoRoute) as exc:
        choose_route(snap, str(SOL), str(USDC), 1, 50)
    assert exc.value.too_small and not exc.value.not_found
    assert str(exc.value).startswith("the amount is too small: no venue pays anything for it")
    # the smallest amounts that buy something get a floor of at least 1, never 0
    choice = choose_route(snap, str(SOL), str(USDC), 10_000, 50)
    assert choice.amount_out >= 1 and choice.min_amount_out >= 1
    assert all(leg.min_amount_out >= 1 for leg in choice.legs)


def test_small_order_does_not_split() -> None:
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    assert len(choose_route(snap, str(SOL), str(USDC), 10**6, 100).legs) == 1


def test_price_impact_grows_with_size() -> None:
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    small = quote_pool(snap.pools[0], snap, str(SOL), 10**7)
    large = quote_pool(snap.pools[0], snap, str(SOL), 20 * 10**9)
    assert small.price_impact_bps <= 1 < large.price_impact_bps


def test_each_leg_carries_its_own_price_impact_and_fee() -> None:
    snap = snapshot(Fraction(150), Fraction(150), cpmm_sol=200, dlmm_sol=200)
    amount = 40 * 10**9
    split = choose_route(snap, str(SOL), str(USDC), amount, 100)
    assert len(split.legs) == 2
    fresh = Snapshot(snap.slot, snap.clock, snap.pools, {}, 0)
    for leg in split.legs:
        pool = next(p for p in snap.pools if str(p.address) == leg.pool)
        alone = quote_pool(pool, fresh, str(SOL), leg.amount_in)
        assert (leg.price_impact_bps, leg.fee) == (alone.price_impact_bps, alone.fee)
        assert leg.fee > 0
    # the route's impact is the largest leg's, and a split moves each pool less than one pool alone
    assert split.price_impact_bps == max(leg.price_impact_bps for leg in split.legs)
    single_best = max(q.price_impact_bps for q in split.quotes if not q.error)
    assert 0 < split.price_impact_bps < single_best
    one = choose_route(snap, str(SOL), str(USDC), 10**6, 100)
    assert one.legs[0].fee == next(q.fee for q in one.quotes if q.pool == one.legs[0].pool)
