"""The executor trusts no caller's numbers: before it builds (and so before it signs), an attempt
is checked against the order as persistence stored it and against the executor's own quote.

- the order must exist and not be terminal (FAILED_PRECONDITION: a confirmed or failed order is
  never executed again);
- the request's pair and amount must be the stored order's (INVALID_ARGUMENT);
- each leg's `min_amount_out` must be at least the executor's fresh quote of that leg minus the
  order's slippage (FAILED_PRECONDITION: retryable, the worker quotes again). The fresh quote is
  computed from the same per-slot pool state the builder reads (one getMultipleAccounts per slot
  for every order in it, no call per order), with the router's own exact math. The router quoted
  from a snapshot up to a refresh interval older than the executor's, and in that time other swaps
  move the pools either way, so the floor gives the caller QUOTE_TOLERANCE_BPS (a setting,
  EXECUTOR_QUOTE_TOLERANCE_BPS) below the slippage floor: a caller can take at most the slippage
  the trader accepted plus that tolerance, never the whole swap (min-out 1 is refused);
- an exact-out order's amount out must be the stored one, and each leg's `max_amount_in` at most
  the executor's fresh quote of the input that leg needs, plus the order's slippage (rounded up, as
  the router rounds) plus the same tolerance (FAILED_PRECONDITION, retryable): a caller can make
  the trader pay at most the slippage accepted plus that tolerance above the market.

Each check is a small pure function (`check_order`, `min_out_floor`, `check_min_outs`), so a
batched executor can run them over many requests at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from solders.pubkey import Pubkey

from common import lifecycle
from common.chain import AccountData, ChainClient
from common.dex import meteora_dlmm as dlmm
from common.dex.errors import LayoutError, QuoteError
from common.errors import FailedPrecondition, InvalidArgument
from executor_svc.builder import LegPlan, OrderPlan
from orderengine.v1 import orders_pb2
from router_svc.pools import (
    CLOCK_SYSVAR,
    Clock,
    PoolStateT,
    Snapshot,
    decode_clock,
    decode_pool,
    wanted_bin_arrays,
)
from router_svc.quotes import quote_pool, quote_pool_out

BPS = 10_000


def check_order(plan: OrderPlan, order: orders_pb2.Order) -> None:
    """The stored order allows this attempt: not terminal, same pair, same amount."""
    status = lifecycle.name_of(order.status)
    if lifecycle.is_terminal(status):
        raise FailedPrecondition(f"the order is {status}; nothing is executed again", field="order_id")
    spec = order.spec
    if str(plan.input_mint) != spec.input_mint:
        raise InvalidArgument("is not the stored order's input mint", field="input_mint")
    if str(plan.output_mint) != spec.output_mint:
        raise InvalidArgument("is not the stored order's output mint", field="output_mint")
    if plan.amount_out != spec.amount_out:
        raise InvalidArgument(f"is not the stored order's amount out ({spec.amount_out})", field="amount_out")
    if plan.amount_in != spec.amount_in:
        raise InvalidArgument(f"is not the stored order's amount ({spec.amount_in})", field="amount_in")


def min_out_floor(fresh_out: int, slippage_bps: int, tolerance_bps: int) -> int:
    """The lowest min-out accepted for a leg the executor quotes at `fresh_out`: the quote minus
    the order's slippage (rounded down: at most the router's bound, which rounds up), minus the
    tolerance."""
    after_slippage = fresh_out * (BPS - slippage_bps) // BPS
    return after_slippage * (BPS - tolerance_bps) // BPS


def max_in_ceiling(fresh_in: int, slippage_bps: int, tolerance_bps: int) -> int:
    """The highest max-in accepted for an exact-out leg the executor quotes at `fresh_in`: the
    quote plus the order's slippage (rounded up, as the router rounds), plus the tolerance."""
    after_slippage = -(-fresh_in * (BPS + slippage_bps) // BPS)
    return -(-after_slippage * (BPS + tolerance_bps) // BPS)


class OffMarketBound(FailedPrecondition):
    """A leg's min-out (max-in) is outside the executor's own quote. Retryable: the caller most
    likely quoted a pool that moved since (in the trader's favour, too: a better price raises the
    floor); its next attempt quotes again. A caller that keeps asking is refused every time."""

    retryable = True


def check_min_outs(
    legs: Sequence[LegPlan], fresh: Sequence[int], slippage_bps: int, tolerance_bps: int
) -> None:
    """Every leg's bound is within the executor's own quote (FAILED_PRECONDITION names the leg):
    an exact-in leg's min-out at least its floor, an exact-out leg's max-in at most its ceiling.
    `fresh` holds each leg's fresh amount out (exact-in) or input needed (exact-out), 0 where the
    pool cannot quote the leg (its build then fails with the program's own reason)."""
    for i, (leg, fresh_amount) in enumerate(zip(legs, fresh, strict=True)):
        if leg.exact_out:
            ceiling = max_in_ceiling(fresh_amount, slippage_bps, tolerance_bps)
            if fresh_amount and leg.max_amount_in > ceiling:
                raise OffMarketBound(
                    f"{leg.max_amount_in} is above the executor's ceiling {ceiling} (its quote "
                    f"{fresh_amount} plus {slippage_bps} bps slippage and {tolerance_bps} bps tolerance)",
                    field=f"route.legs[{i}].max_amount_in",
                )
            continue
        floor = min_out_floor(fresh_amount, slippage_bps, tolerance_bps)
        if leg.min_amount_out < floor:
            raise OffMarketBound(
                f"{leg.min_amount_out} is below the executor's floor {floor} (its quote {fresh_amount} less "
                f"{slippage_bps} bps slippage and {tolerance_bps} bps tolerance)",
                field=f"route.legs[{i}].min_amount_out",
            )


class FreshQuoter:
    """Quotes each leg of a plan from the chain client's per-slot account cache (shared with the
    builder): a pool's account and the Clock first, then what the pool names (config, vaults,
    mints; reserves, mints, bin arrays), each read at most once per slot for all orders."""

    def __init__(self, chain: ChainClient, programs: dict[str, Pubkey]) -> None:
        self._chain = chain
        self._programs = programs
        self._decodes: dict[Pubkey, tuple[tuple[AccountData | None, ...], PoolStateT]] = {}
        self._deps: dict[Pubkey, tuple[AccountData, list[Pubkey]]] = {}

    async def quote(self, plan: OrderPlan, max_age_s: float | None = None) -> list[int]:
        """The amount out of each leg on the current state, or for an exact-out leg the input it
        needs (0 where the pool cannot quote it). `max_age_s` as in get_multiple_accounts (default:
        the chain client's per-slot cache; 0 reads the chain now)."""
        first = [CLOCK_SYSVAR, *(leg.pool for leg in plan.legs)]
        slot, accounts = await self._chain.get_multiple_accounts(first, max_age_s)
        found: dict[Pubkey, AccountData | None] = dict(zip(first, accounts, strict=True))
        needed: list[Pubkey] = []
        deps: dict[Pubkey, list[Pubkey]] = {}
        for leg in plan.legs:
            deps[leg.pool] = self._dependencies(leg, found[leg.pool])
            needed += deps[leg.pool]
        if needed:
            _, more = await self._chain.get_multiple_accounts(needed, max_age_s)
            found.update(zip(needed, more, strict=True))
        clock_account = found[CLOCK_SYSVAR]
        clock = (
            decode_clock(clock_account.data, slot)
            if clock_account is not None
            else Clock(slot, 0, int(time.time()))
        )
        snapshot = Snapshot(slot, clock, [], {}, time.monotonic())
        outs: list[int] = []
        for leg in plan.legs:
            try:
                state = self._decoded(leg, [leg.pool, *deps[leg.pool]], found)
            except (LayoutError, QuoteError, KeyError, ValueError):
                outs.append(0)  # the build fails on it anyway, with its own reason
                continue
            if leg.exact_out:
                needs = quote_pool_out(state, snapshot, str(plan.input_mint), leg.min_amount_out)
                outs.append(0 if needs.error else needs.amount_in)
                continue
            quote = quote_pool(state, snapshot, str(plan.input_mint), leg.amount_in)
            outs.append(0 if quote.error else quote.amount_out)
        return outs

    def _decoded(
        self, leg: LegPlan, keys: list[Pubkey], found: dict[Pubkey, AccountData | None]
    ) -> PoolStateT:
        """The pool decoded from `found`, reused while the chain client serves the very same
        account objects (its per-slot cache): one decode per pool per slot, not one per order."""
        accounts = tuple(found.get(k) for k in keys)
        cached = self._decodes.get(leg.pool)
        if cached is not None and len(cached[0]) == len(accounts):
            if all(a is b for a, b in zip(cached[0], accounts, strict=True)):
                return cached[1]
        state = decode_pool(leg.venue, leg.pool, self._programs[leg.venue], found)
        self._decodes[leg.pool] = (accounts, state)
        return state

    def _dependencies(self, leg: LegPlan, account: AccountData | None) -> list[Pubkey]:
        """The accounts a pool's quote needs besides its own, reused while the chain client serves
        the very same account object (as `_decoded`): one decode per pool per slot."""
        if account is None:
            return []
        cached = self._deps.get(leg.pool)
        if cached is not None and cached[0] is account:
            return cached[1]
        deps = self._read_dependencies(leg, account)
        self._deps[leg.pool] = (account, deps)
        return deps

    def _read_dependencies(self, leg: LegPlan, account: AccountData) -> list[Pubkey]:
        program = self._programs[leg.venue]
        try:
            if leg.venue == "raydium_cpmm":
                from common.dex import raydium_cpmm as cpmm

                pool = cpmm.decode_pool_state(leg.pool, account.owner, account.data, program)
                return [
                    pool.amm_config,
                    pool.token_0_vault,
                    pool.token_1_vault,
                    pool.token_0_mint,
                    pool.token_1_mint,
                ]
            pair = dlmm.decode_lb_pair(leg.pool, account.owner, account.data, program)
        except LayoutError:
            return []
        arrays = [dlmm.bin_array_pda(program, leg.pool, i) for i in sorted(wanted_bin_arrays(pair))]
        return [pair.reserve_x, pair.reserve_y, pair.token_x_mint, pair.token_y_mint, *arrays]
