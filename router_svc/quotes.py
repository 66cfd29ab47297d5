"""Quoting every pool of a pair with the exact program math, and choosing the route.

Price impact: how far the execution price falls short of the pool's spot price after its fee
rate, in bps (CPMM spot = reserve_out / reserve_in; DLMM spot = the active bin's price).
A split across two pools is searched only when the best single pool's impact reaches
`split_min_impact_bps` (below that a second leg cannot pay for itself), and taken only when it
beats the best single pool by more than `split_min_gain_bps` of its output.

Exact-out (`choose_route_exact_out`): every pool is quoted with its program's exact-out math (CPMM
`swap_base_output`, DLMM `swap_exact_out2`) for the whole amount out; the pool needing the least
input wins, and a split (two legs whose outputs sum to exactly the amount out) is taken when it
needs less input by more than `split_min_gain_bps` of the best single input. Each leg's
`max_amount_in` is its quoted input plus the slippage, rounded up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from common.amounts import max_in, min_out
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.errors import QuoteError
from common.dex.routing import best_split
from router_svc.pools import CpmmState, PoolStateT, Snapshot

log = logging.getLogger(__name__)

Q64 = 1 << 64


@dataclass(frozen=True)
class PoolQuote:
    venue: str
    pool: str
    amount_in: int
    amount_out: int = 0
    fee: int = 0
    price_impact_bps: int = 0
    error: str = ""


@dataclass(frozen=True)
class Leg:
    venue: str
    pool: str
    amount_in: int
    amount_out: int
    min_amount_out: int
    price_impact_bps: int = 0
    fee: int = 0
    exact_out: bool = False  # amount_out is delivered exactly, spending at most max_amount_in
    max_amount_in: int = 0


@dataclass(frozen=True)
class RouteChoice:
    quotes: list[PoolQuote]
    legs: list[Leg]
    amount_out: int
    min_amount_out: int
    exact_out: bool = False

    @property
    def max_amount_in(self) -> int:
        """Exact-out: what the route may spend at most (the legs' bounds); 0 for exact-in."""
        return sum(leg.max_amount_in for leg in self.legs)

    @property
    def price_impact_bps(self) -> int:
        """The largest leg's impact: how far the route moves the pool it moves most."""
        return max((leg.price_impact_bps for leg in self.legs), default=0)


class NoRoute(Exception):
    """No pool trades the pair (not_found=True) or none can quote the amount."""

    def __init__(self, message: str, not_found: bool, too_small: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found
        self.too_small = too_small  # some venue quotes 0 out, none more: the amount is the problem


ZERO_OUTPUT = "ZeroOutput: the amount buys 0 base units of the output"
# What each program answers an exact-in swap that would pay 0 (CPMM `require_gt!(amount, 0)` on
# the input or output after transfer fees, DLMM `InsufficientOutAmount`).
_ZERO_OUTPUT_ERRORS = frozenset({"RequireGtViolated", "InsufficientOutAmount"})


def _swap(state: PoolStateT, snap: Snapshot, input_mint: str, amount_in: int) -> tuple[int, int]:
    """(amount_out, fee) of an exact-in swap on one pool; QuoteError where the program would fail."""
    return _memoized(snap, state, input_mint, amount_in, False)


def _swap_out(state: PoolStateT, snap: Snapshot, input_mint: str, amount_out: int) -> tuple[int, int]:
    """(amount_in, fee) of an exact-out swap on one pool; QuoteError where the program would fail."""
    return _memoized(snap, state, input_mint, amount_out, True)


def _memoized(
    snap: Snapshot, state: PoolStateT, input_mint: str, amount: int, exact_out: bool
) -> tuple[int, int]:
    """_program_quote(...), its answer or its QuoteError kept in the snapshot's memo (bounded)."""
    key = (str(state.address), input_mint, amount, exact_out)
    cached = snap.memo.get(key)
    if cached is not None:
        if isinstance(cached, QuoteError):
            raise cached
        return cached  # type: ignore[no-any-return]
    try:
        result = _program_quote(state, snap, input_mint, amount, exact_out)
    except QuoteError as exc:
        if len(snap.memo) < 50_000:
            snap.memo[key] = exc
        raise
    if len(snap.memo) < 50_000:
        snap.memo[key] = result
    return result


def _program_quote(
    state: PoolStateT, snap: Snapshot, input_mint: str, amount: int, exact_out: bool
) -> tuple[int, int]:
    """Exact-in: (amount_out, fee) for `amount` in; exact-out: (amount_in, fee) for `amount` out."""
    if isinstance(state, CpmmState):
        zero_for_one = input_mint == str(state.pool.token_0_mint)
        r = (cpmm.quote_exact_out if exact_out else cpmm.quote_exact_in)(
            state.pool,
            state.config,
            state.vault_0,
            state.vault_1,
            amount,
            zero_for_one,
            snap.clock.unix_timestamp,
            mint_in_fee=(state.mint_0 if zero_for_one else state.mint_1).transfer_fee_config,
            mint_out_fee=(state.mint_1 if zero_for_one else state.mint_0).transfer_fee_config,
            epoch=snap.clock.epoch,
        )
        return (r.amount_in if exact_out else r.amount_out), r.trade_fee
    swap_for_y = input_mint == str(state.pair.token_x_mint)
    d = (dlmm.quote_exact_out if exact_out else dlmm.quote_exact_in)(
        state.pair,
        state.bin_arrays,
        amount,
        swap_for_y,
        snap.clock.slot,
        snap.clock.unix_timestamp,
        snap.clock.epoch,
        state.mint_x.transfer_fee_config,
        state.mint_y.transfer_fee_config,
    )
    return (d.amount_in if exact_out else d.amount_out), d.fee


def _impact_bps(state: PoolStateT, input_mint: str, amount_in: int, amount_out: int) -> int:
    """Shortfall of the execution price against spot after the pool's fee rate, in bps (≥ 0)."""
    if isinstance(state, CpmmState):
        zero_for_one = input_mint == str(state.pool.token_0_mint)
        r0, r1 = state.pool.reserves(state.vault_0, state.vault_1)
        r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
        if r_in == 0:
            return 10_000
        fee_ppm = state.config.trade_fee_rate
        ideal = amount_in * r_out * (1_000_000 - fee_ppm) // (r_in * 1_000_000)
    else:
        swap_for_y = input_mint == str(state.pair.token_x_mint)
        price = dlmm.get_price_from_id(state.pair.active_id, state.pair.bin_step)
        fee_1e9 = state.pair.total_fee_rate()
        raw = amount_in * price // Q64 if swap_for_y else amount_in * Q64 // max(price, 1)
        ideal = raw * (1_000_000_000 - fee_1e9) // 1_000_000_000
    if ideal <= 0 or amount_out >= ideal:
        return 0
    return min(10_000, (ideal - amount_out) * 10_000 // ideal)


def quote_pool(state: PoolStateT, snap: Snapshot, input_mint: str, amount_in: int) -> PoolQuote:
    try:
        out, fee = _swap(state, snap, input_mint, amount_in)
    except QuoteError as exc:
        error = _describe(exc)
        if exc.name in _ZERO_OUTPUT_ERRORS:  # the program refuses a swap that pays nothing
            error = f"{ZERO_OUTPUT} ({error})"
        return PoolQuote(state.venue, str(state.address), amount_in, error=error)
    if out <= 0:  # a swap for nothing: no min-out can protect it, so it is never routed
        return PoolQuote(state.venue, str(state.address), amount_in, error=ZERO_OUTPUT)
    return PoolQuote(
        state.venue, str(state.address), amount_in, out, fee, _impact_bps(state, input_mint, amount_in, out)
    )


def quote_pool_out(state: PoolStateT, snap: Snapshot, input_mint: str, amount_out: int) -> PoolQuote:
    """One pool's exact-out quote: the input it needs to deliver exactly `amount_out`."""
    try:
        needed, fee = _swap_out(state, snap, input_mint, amount_out)
    except QuoteError as exc:
        return PoolQuote(state.venue, str(state.address), 0, amount_out, error=_describe(exc))
    return PoolQuote(
        state.venue,
        str(state.address),
        needed,
        amount_out,
        fee,
        _impact_bps(state, input_mint, needed, amount_out),
    )


def _describe(exc: QuoteError) -> str:
    code = f" {exc.code}" if exc.code is not None else ""
    return f"{exc.name}{code}: {exc.message}"


def choose_route(
    snap: Snapshot,
    input_mint: str,
    output_mint: str,
    amount_in: int,
    slippage_bps: int,
    split_min_impact_bps: int = 10,
    split_min_gain_bps: int = 1,
) -> RouteChoice:
    pools = snap.pools_for(input_mint, output_mint)
    if not pools:
        raise NoRoute(f"no pool trades {input_mint} for {output_mint}", not_found=True)
    quotes = [quote_pool(p, snap, input_mint, amount_in) for p in pools]
    ok = sorted(
        ((q, p) for q, p in zip(quotes, pools, strict=True) if not q.error),
        key=lambda qp: qp[0].amount_out,
        reverse=True,
    )
    if not ok:
        reasons = "; ".join(f"{q.venue}: {q.error}" for q in quotes)
        if any(q.error.startswith(ZERO_OUTPUT) for q in quotes):
            raise NoRoute(f"the amount is too small: no venue pays anything for it ({reasons})", False, True)
        raise NoRoute(f"no venue can quote this amount ({reasons})", not_found=False)
    best_q, best_p = ok[0]
    legs = [
        Leg(
            best_q.venue,
            best_q.pool,
            amount_in,
            best_q.amount_out,
            min_out(best_q.amount_out, slippage_bps),
            best_q.price_impact_bps,
            best_q.fee,
        )
    ]
    if len(ok) >= 2 and best_q.price_impact_bps >= split_min_impact_bps:
        second_q, second_p = ok[1]
        f_a = _curve(best_p, snap, input_mint)
        f_b = _curve(second_p, snap, input_mint)
        gain_floor = best_q.amount_out * split_min_gain_bps // 10_000
        a_in, b_in, total = best_split(f_a, f_b, amount_in, extra_cost_out=gain_floor)
        if a_in > 0 and b_in > 0 and total > best_q.amount_out + gain_floor:
            out_a, out_b = f_a(a_in), f_b(b_in)
            legs = [
                Leg(
                    best_q.venue,
                    best_q.pool,
                    a_in,
                    out_a,
                    min_out(out_a, slippage_bps),
                    _impact_bps(best_p, input_mint, a_in, out_a),
                    _swap(best_p, snap, input_mint, a_in)[1],
                ),
                Leg(
                    second_q.venue,
                    second_q.pool,
                    b_in,
                    out_b,
                    min_out(out_b, slippage_bps),
                    _impact_bps(second_p, input_mint, b_in, out_b),
                    _swap(second_p, snap, input_mint, b_in)[1],
                ),
            ]
    amount_out = sum(leg.amount_out for leg in legs)
    return RouteChoice(quotes, legs, amount_out, sum(leg.min_amount_out for leg in legs))


def _curve(state: PoolStateT, snap: Snapshot, input_mint: str) -> Callable[[int], int]:
    def f(amount: int) -> int:
        if amount <= 0:
            return 0
        try:
            return _swap(state, snap, input_mint, amount)[0]
        except QuoteError:
            return 0

    return f


# Exact-out splits reuse best_split (a maximiser) on f(x) = C·x − input(x): with C above any
# price a pool can quote (an input is at most a u64, an output at least 1), f is positive, rising
# and concave where the input is convex, an unquotable amount is worth 0 (below every quotable
# one), and f_a(x) + f_b(T − x) = C·T − total input, so the largest sum is the least input.
_C = 1 << 64


def _exact_out_leg(q: PoolQuote, slippage_bps: int) -> Leg:
    return Leg(
        q.venue,
        q.pool,
        q.amount_in,
        q.amount_out,
        q.amount_out,
        q.price_impact_bps,
        q.fee,
        exact_out=True,
        max_amount_in=max_in(q.amount_in, slippage_bps),
    )


def choose_route_exact_out(
    snap: Snapshot,
    input_mint: str,
    output_mint: str,
    amount_out: int,
    slippage_bps: int,
    split_min_impact_bps: int = 10,
    split_min_gain_bps: int = 1,
) -> RouteChoice:
    """The route delivering exactly `amount_out` for the least input: the cheapest pool, or two
    legs whose outputs sum to `amount_out` when that needs less input by more than
    `split_min_gain_bps` of the best single input."""
    pools = snap.pools_for(input_mint, output_mint)
    if not pools:
        raise NoRoute(f"no pool trades {input_mint} for {output_mint}", not_found=True)
    quotes = [quote_pool_out(p, snap, input_mint, amount_out) for p in pools]
    ok = sorted(
        ((q, p) for q, p in zip(quotes, pools, strict=True) if not q.error),
        key=lambda qp: qp[0].amount_in,
    )
    if not ok:
        reasons = "; ".join(f"{q.venue}: {q.error}" for q in quotes)
        raise NoRoute(f"no venue can deliver this amount out ({reasons})", not_found=False)
    best_q, best_p = ok[0]
    legs = [_exact_out_leg(best_q, slippage_bps)]
    if len(ok) >= 2 and best_q.price_impact_bps >= split_min_impact_bps and amount_out >= 2:
        second_q, second_p = ok[1]
        f_a = _input_curve(best_p, snap, input_mint)
        f_b = _input_curve(second_p, snap, input_mint)
        gain_floor = best_q.amount_in * split_min_gain_bps // 10_000
        a_out, b_out, _ = best_split(f_a, f_b, amount_out, extra_cost_out=gain_floor)
        if a_out > 0 and b_out > 0:
            legs = [
                _exact_out_leg(quote_pool_out(best_p, snap, input_mint, a_out), slippage_bps),
                _exact_out_leg(quote_pool_out(second_p, snap, input_mint, b_out), slippage_bps),
            ]
    return RouteChoice(quotes, legs, amount_out, amount_out, exact_out=True)


def _input_curve(state: PoolStateT, snap: Snapshot, input_mint: str) -> Callable[[int], int]:
    """x ↦ C·x − (the input buying exactly x out); QuoteError where the pool cannot deliver x."""

    def f(amount_out: int) -> int:
        if amount_out <= 0:
            return 0
        return _C * amount_out - _swap_out(state, snap, input_mint, amount_out)[0]

    return f
