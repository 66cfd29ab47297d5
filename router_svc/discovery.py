"""Pool discovery: the pools of a token pair on each venue, found on chain by `getProgramAccounts`.

A pool account holds its two mints at fixed offsets, so one `getProgramAccounts` per venue and mint
order, filtered by the account's size, its Anchor discriminator and both mints, returns exactly the
pools of the pair (and nothing of the programs' other accounts):

=============  =========  ==========================  =============================================
venue          account    size                        mints
=============  =========  ==========================  =============================================
raydium_cpmm   PoolState  637 (`POOL_STATE_SIZE`)     token_0_mint at 168, token_1_mint at 200
meteora_dlmm   LbPair     904 (`LB_PAIR_SIZE`)        token_x_mint at 88, token_y_mint at 120
=============  =========  ==========================  =============================================

CPMM stores its mints sorted and DLMM in the order the pair was created, so both orders are asked
for. Every account found is decoded (owner, size, discriminator checked) before it is reported.
Then the pools' state is read once through the router's own `PoolBook` (one `getMultipleAccounts`
for all of them) to rank them by depth and drop disabled or empty ones. `getProgramAccounts` is a
heavy call on a real node: this runs at set-up time (`python -m router_svc.discover`), never per
order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey

from common.chain import ChainClient, DataSize, Memcmp
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.errors import LayoutError, QuoteError
from common.markets import Markets, PoolRef
from router_svc.pools import CpmmState, DlmmState, PoolBook

log = logging.getLogger(__name__)

__all__ = ["FoundPool", "discover_pools", "merge_pools", "pool_filters", "pool_reserves", "rank_pools"]


@dataclass(frozen=True)
class FoundPool:
    """A pool of the pair found on chain. `mints` in the pool's own order (token_0/1, X/Y);
    `reserve_a`/`reserve_b` the pool's holdings of the pair's first/second token (None until
    `rank_pools` read them); `enabled` False when the pool refuses swaps."""

    venue: str
    address: Pubkey
    mints: tuple[Pubkey, Pubkey]
    reserve_a: int | None = None
    reserve_b: int | None = None
    enabled: bool = True


def pool_filters(venue: str, mint_a: Pubkey, mint_b: Pubkey) -> list[list[Memcmp | DataSize]]:
    """The `getProgramAccounts` filter sets that find the venue's pools of the pair, one per
    mint order (4 filters each: size, discriminator, first mint, second mint)."""
    if venue == "raydium_cpmm":
        size, disc = cpmm.POOL_STATE_SIZE, cpmm.DISC_POOL_STATE
        first, second = cpmm.POOL_STATE_TOKEN_0_MINT_OFFSET, cpmm.POOL_STATE_TOKEN_1_MINT_OFFSET
    elif venue == "meteora_dlmm":
        size, disc = dlmm.LB_PAIR_SIZE, dlmm.DISC_LB_PAIR
        first, second = dlmm.LB_PAIR_TOKEN_X_MINT_OFFSET, dlmm.LB_PAIR_TOKEN_Y_MINT_OFFSET
    else:
        raise ValueError(f"unknown venue {venue!r}")
    return [
        [DataSize(size), Memcmp(0, disc), Memcmp(first, bytes(m0)), Memcmp(second, bytes(m1))]
        for m0, m1 in ((mint_a, mint_b), (mint_b, mint_a))
    ]


def _decode(venue: str, address: Pubkey, owner: Pubkey, data: bytes, program: Pubkey) -> FoundPool:
    if venue == "raydium_cpmm":
        pool = cpmm.decode_pool_state(address, owner, data, program)
        return FoundPool(venue, address, (pool.token_0_mint, pool.token_1_mint), enabled=pool.swap_enabled())
    pair = dlmm.decode_lb_pair(address, owner, data, program)
    enabled = pair.status == dlmm.PAIR_STATUS_ENABLED
    return FoundPool(venue, address, (pair.token_x_mint, pair.token_y_mint), enabled=enabled)


async def discover_pools(
    chain: ChainClient, programs: dict[str, str], mint_a: Pubkey, mint_b: Pubkey
) -> list[FoundPool]:
    """Every pool of the pair on each venue of `programs` (venue → program id), by venue then
    address. Accounts that match the filters but do not decode are logged and left out."""
    if mint_a == mint_b:
        raise ValueError("a pair needs two different mints")
    wanted = {mint_a, mint_b}
    jobs = []
    for venue, program_text in sorted(programs.items()):
        program = Pubkey.from_string(program_text)
        for filters in pool_filters(venue, mint_a, mint_b):
            jobs.append((venue, program, chain.get_program_accounts(program, filters)))
    results = await asyncio.gather(*(job for _, _, job in jobs))
    found: dict[Pubkey, FoundPool] = {}
    for (venue, program, _), accounts in zip(jobs, results, strict=True):
        for item in accounts:
            try:
                pool = _decode(venue, item.pubkey, item.account.owner, item.account.data, program)
            except LayoutError as exc:
                log.warning("skipping an account that is no pool", extra={"venue": venue, "error": str(exc)})
                continue
            if set(pool.mints) != wanted:  # a node that ignored a filter
                continue
            found[item.pubkey] = pool
    return sorted(found.values(), key=lambda p: (p.venue, str(p.address)))


def pool_reserves(state: CpmmState | DlmmState, mint_a: Pubkey) -> tuple[int, int]:
    """(holdings of mint_a, holdings of the other mint)."""
    if isinstance(state, CpmmState):
        try:
            r0, r1 = state.pool.reserves(state.vault_0, state.vault_1)
        except QuoteError:
            r0 = r1 = 0
        return (r0, r1) if state.pool.token_0_mint == mint_a else (r1, r0)
    rx, ry = state.reserve_x, state.reserve_y
    return (rx, ry) if state.pair.token_x_mint == mint_a else (ry, rx)


async def rank_pools(
    chain: ChainClient, markets: Markets, pools: Sequence[FoundPool], mint_a: Pubkey, top: int = 0
) -> list[FoundPool]:
    """Reads the pools' state (one PoolBook refresh), drops the disabled, empty and unreadable
    ones, and keeps the `top` deepest per venue by their holdings of `mint_b`'s side (all when
    `top` is 0), deepest first."""
    if not pools:
        return []
    refs = tuple(PoolRef(p.venue, str(p.address)) for p in pools)
    book = PoolBook(chain, Markets(markets.cluster, dict(markets.programs), markets.tokens, refs), 0.0)
    snapshot = await book.snapshot()
    states = {s.address: s for s in snapshot.pools}
    kept: list[FoundPool] = []
    for pool in pools:
        state = states.get(pool.address)
        if state is None:
            log.warning("pool state unreadable; left out", extra={"pool": str(pool.address)})
            continue
        reserve_a, reserve_b = pool_reserves(state, mint_a)
        ranked = FoundPool(pool.venue, pool.address, pool.mints, reserve_a, reserve_b, pool.enabled)
        if not pool.enabled or reserve_a == 0 or reserve_b == 0:
            log.info("pool disabled or empty; left out", extra={"pool": str(pool.address)})
            continue
        kept.append(ranked)
    out: list[FoundPool] = []
    for venue in sorted({p.venue for p in kept}):
        mine = sorted((p for p in kept if p.venue == venue), key=lambda p: -(p.reserve_b or 0))
        out.extend(mine[:top] if top else mine)
    return out


def merge_pools(
    existing: Iterable[dict[str, object]], found: Iterable[dict[str, object]]
) -> list[dict[str, object]]:
    """The markets file's pools with the found ones appended (an address already listed stays as
    it is)."""
    out = list(existing)
    seen = {p.get("address") for p in out}
    for pool in found:
        if pool["address"] not in seen:
            out.append(pool)
            seen.add(pool["address"])
    return out
