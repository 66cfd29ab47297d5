"""Exact integer split of one order across two venues.

Given two exact quote functions ``f(amount_in) -> amount_out`` (monotone, and concave up to
integer rounding), :func:`best_split` maximises ``f_a(x) + f_b(T - x)`` over integers ``x`` with a
Fibonacci search (the integer form of golden-section search: one new evaluation per step, every
evaluation memoised), then checks the final bracket exhaustively. A venue that cannot quote an
amount (its function raises :class:`~common.dex.errors.QuoteError`, e.g. output rounds to zero or
liquidity runs out) makes that split infeasible rather than worth zero, because the transaction
would fail. The split must beat the best single venue by more than ``extra_cost_out`` (the output
value of the extra instruction's cost) to be chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from common.dex.errors import QuoteError

__all__ = ["QuoteFn", "Split", "best_split"]

QuoteFn = Callable[[int], int]

_FIBS: list[int] = [1, 1]
while _FIBS[-1] < 1 << 70:
    _FIBS.append(_FIBS[-1] + _FIBS[-2])


@dataclass(frozen=True, slots=True)
class Split:
    """The chosen allocation (``amount_a + amount_b == amount_in``) and its total output."""

    amount_a: int
    amount_b: int
    amount_out: int

    def __iter__(self) -> Iterator[int]:
        """Unpack as ``(amount_a, amount_b, amount_out)``."""
        return iter((self.amount_a, self.amount_b, self.amount_out))


class _Memo:
    __slots__ = ("calls", "cache", "error", "f")

    def __init__(self, f: QuoteFn) -> None:
        self.f = f
        self.cache: dict[int, int | None] = {0: 0}
        self.error: QuoteError | None = None
        self.calls = 0

    def __call__(self, amount: int) -> int | None:
        hit = self.cache.get(amount, -1)
        if hit != -1:
            return hit
        self.calls += 1
        try:
            out: int | None = self.f(amount)
        except QuoteError as exc:
            self.error = exc
            out = None
        self.cache[amount] = out
        return out


def best_split(
    f_a: QuoteFn,
    f_b: QuoteFn,
    amount_in: int,
    extra_cost_out: int = 0,
    *,
    resolution: int = 1,
) -> Split:
    """Best allocation of ``amount_in`` between venue A and venue B.

    Returns a :class:`Split` (unpacks as ``(amount_a, amount_b, out)``). One of the amounts is 0
    when a single venue is at least as good as any split plus ``extra_cost_out``. ``resolution``
    restricts split points to multiples of it (1 = every integer; larger values trade exactness
    for fewer quote calls, the single-venue endpoints are always considered). Raises the last
    :class:`QuoteError` seen when no allocation can be quoted at all.
    """
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    if resolution <= 0:
        raise ValueError("resolution must be positive")
    qa, qb = _Memo(f_a), _Memo(f_b)
    total = amount_in

    single_a = qa(total)
    single_b = qb(total)
    best_single: Split | None = None
    if single_a is not None:
        best_single = Split(total, 0, single_a)
    if single_b is not None and (best_single is None or single_b > best_single.amount_out):
        best_single = Split(0, total, single_b)

    # interior split points: x = k * resolution, 1 <= x <= total - 1
    k_min = max(1, -(-1 // resolution))
    k_max = (total - 1) // resolution

    def g(k: int) -> int | None:
        """Total output of split point ``k``; ``None`` when either leg cannot be quoted."""
        if k < k_min or k > k_max:
            return None
        x = k * resolution
        out_a = qa(x)
        out_b = qb(total - x)
        if out_a is None or out_b is None:
            return None
        return out_a + out_b

    def g_search(k: int) -> int:
        """The search objective: a leg that cannot be quoted counts as zero output (its
        failures are output rounding to zero or liquidity running out), which keeps the
        objective unimodal; such points are never chosen."""
        if k > k_max:
            return -1
        x = k * resolution
        return (qa(x) or 0) + (qb(total - x) or 0)

    best_interior: tuple[int, int] | None = None  # (out, k)

    def consider(k: int) -> None:
        nonlocal best_interior
        v = g(k)
        if v is not None and (best_interior is None or v > best_interior[0]):
            best_interior = (v, k)

    if k_max >= k_min:
        lo = k_min
        n = 0
        while _FIBS[n] < k_max - k_min:
            n += 1
        # bracket [lo, lo + F_n]; points beyond k_max rank below every feasible one
        while n > 3:
            if g_search(lo + _FIBS[n - 2]) < g_search(lo + _FIBS[n - 1]):
                lo += _FIBS[n - 2]
            n -= 1
        for k in range(lo - 2, lo + _FIBS[n] + 3):
            consider(k)
        if best_interior is not None:
            # the final exact check: walk uphill past rounding plateaus
            k = best_interior[1]
            for step in (-1, 1):
                j = k + step
                while abs(j - k) <= 64:
                    v = g(j)
                    if v is None or v < best_interior[0]:
                        break
                    if v > best_interior[0]:
                        best_interior = (v, j)
                    j += step

    if best_interior is not None:
        out, k = best_interior
        x = k * resolution
        if best_single is None or out > best_single.amount_out + extra_cost_out:
            return Split(x, total - x, out)
    if best_single is not None:
        return best_single
    error = qa.error or qb.error
    if error is None:  # pragma: no cover - a quote function returned without output
        raise QuoteError(None, "NoRoute", "no venue can quote this amount", "routing")
    raise error
