"""The sniper watch's side in the router: the pools of some pairs as the chain has them now.

`watch_pools` scans both programs for each pair (`router_svc.discovery.discover_pools`: one
`getProgramAccounts` per program and mint order, filtered by the pool account's size,
discriminator and both mints), hands any pool not known yet to the `PoolBook` (so it is quotable
from this call on, without a restart, and read once per slot like every other pool), and answers
each pool's holdings of both mints and whether it swaps now, from one fresh snapshot.

This replica learns the pools it is asked about. Besides, `PairLearner` lets a quote for a pair
with no known pool look the pair up on chain (at most once a second per pair, concurrent quotes
sharing one scan), so a pool created at runtime is quotable on every replica, sniper or not. On a
real cluster `getProgramAccounts` is heavy: the worker asks only for pairs with open sniper orders,
at SNIPER_INTERVAL_MS, and a quote only for a pair nothing trades yet.
"""

from __future__ import annotations

import asyncio
import time

from solders.pubkey import Pubkey

from common.chain import ChainError
from common.errors import InvalidArgument, Unavailable
from orderengine.v1 import router_pb2
from router_svc.discovery import FoundPool, discover_pools, pool_reserves
from router_svc.pools import CpmmState, PoolBook

MAX_PAIRS = 100
LEARN_EVERY_S = 1.0  # a pair with no pool is looked up on chain at most this often
MAX_REMEMBERED = 10_000


def _pairs(request: router_pb2.WatchPoolsRequest) -> list[tuple[Pubkey, Pubkey]]:
    if not 1 <= len(request.pairs) <= MAX_PAIRS:
        raise InvalidArgument(f"must hold 1 to {MAX_PAIRS} pairs", field="pairs")
    out = []
    for i, pair in enumerate(request.pairs):
        mints = []
        for name, value in (("mint_a", pair.mint_a), ("mint_b", pair.mint_b)):
            try:
                mints.append(Pubkey.from_string(value))
            except ValueError:
                raise InvalidArgument("is not a valid base58 address", field=f"pairs[{i}].{name}") from None
        if mints[0] == mints[1]:
            raise InvalidArgument("must differ from mint_a", field=f"pairs[{i}].mint_b")
        out.append((mints[0], mints[1]))
    return out


async def watch_pools(book: PoolBook, request: router_pb2.WatchPoolsRequest) -> router_pb2.WatchPoolsResponse:
    pairs = _pairs(request)
    try:
        found: list[list[FoundPool]] = await asyncio.gather(
            *(discover_pools(book.chain, book.markets.programs, a, b) for a, b in pairs)
        )
        book.add_pools((pool.venue, pool.address) for group in found for pool in group)
        snap = await book.snapshot()
    except ChainError as exc:
        raise Unavailable(f"the chain cannot be read: {exc}") from None
    states = {state.address: state for state in snap.pools}
    out: list[router_pb2.PoolLiquidity] = []
    waiting = False
    for (mint_a, mint_b), group in zip(pairs, found, strict=True):
        for pool in group:
            state = states.get(pool.address)
            if state is None:
                continue  # not readable yet (its vaults not landed, say): the next call sees it
            reserve_a, reserve_b = pool_reserves(state, mint_a)
            open_time = state.pool.open_time if isinstance(state, CpmmState) else 0
            tradable = pool.enabled and snap.clock.unix_timestamp >= open_time
            waiting = waiting or (pool.enabled and not tradable)
            out.append(
                router_pb2.PoolLiquidity(
                    venue=pool.venue,
                    pool=str(pool.address),
                    mint_a=str(mint_a),
                    mint_b=str(mint_b),
                    reserve_a=reserve_a,
                    reserve_b=reserve_b,
                    tradable=tradable,
                    open_time=open_time,
                )
            )
    if waiting:
        # A pool of a watched pair opens soon: read the chain again at the next call rather than
        # at the next POOL_REFRESH_MS, so that it is seen (and quoted) open in its first slot.
        book.expire()
    return router_pb2.WatchPoolsResponse(pools=out, slot=snap.slot)


class PairLearner:
    """Looks a pair up on chain when a quote finds no pool of it (see the module's note)."""

    def __init__(self, book: PoolBook) -> None:
        self.book = book
        self._last: dict[frozenset[str], float] = {}
        self._running: dict[frozenset[str], asyncio.Future[bool]] = {}

    async def learn(self, mint_a: str, mint_b: str) -> bool:
        """Whether pools of the pair were found that the book did not know (then quote again)."""
        key = frozenset((mint_a, mint_b))
        running = self._running.get(key)
        if running is None:
            now = time.monotonic()
            if now - self._last.get(key, float("-inf")) < LEARN_EVERY_S:
                return False
            if len(self._last) >= MAX_REMEMBERED:
                self._last.clear()
            self._last[key] = now
            running = asyncio.ensure_future(
                self._scan(Pubkey.from_string(mint_a), Pubkey.from_string(mint_b))
            )
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)

    async def _scan(self, mint_a: Pubkey, mint_b: Pubkey) -> bool:
        try:
            found = await discover_pools(self.book.chain, self.book.markets.programs, mint_a, mint_b)
        except ChainError:
            return False
        return self.book.add_pools((pool.venue, pool.address) for pool in found) > 0
