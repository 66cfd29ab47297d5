"""The sniper watch's side in the router: the pools of some pairs as the chain has them now.

`watch_pools` scans both programs for each pair (`router_svc.discovery.discover_pools`: one
`getProgramAccounts` per program and mint order, filtered by the pool account's size,
discriminator and both mints), hands any pool not known yet to the `PoolBook` (so it is quotable
from this call on, without a restart, and read once per slot like every other pool), and answers
each pool's holdings of both mints and whether it swaps now, from one fresh snapshot.

This replica learns the pools it is asked about; another router replica learns a new pair's pool
the first time it is asked too (the worker's sniper watch asks before it triggers). On a real
cluster `getProgramAccounts` is heavy: the worker asks only for pairs with open sniper orders, at
SNIPER_INTERVAL_MS.
"""

from __future__ import annotations

import asyncio

from solders.pubkey import Pubkey

from common.chain import ChainError
from common.errors import InvalidArgument, Unavailable
from orderengine.v1 import router_pb2
from router_svc.discovery import FoundPool, discover_pools, pool_reserves
from router_svc.pools import CpmmState, PoolBook

MAX_PAIRS = 100


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
