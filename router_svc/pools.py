"""Pool state, read once per slot and shared by every quote in it.

The first read of a pool learns its static accounts (config, vaults, mints, oracle); after that one
`getMultipleAccounts` per refresh reads every dynamic account of every pool, the bin arrays around
each DLMM pair's active bin and the Clock sysvar. Concurrent callers share one refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey

from common.chain import AccountData, ChainClient, ChainError
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex import spl_token
from common.dex.errors import LayoutError, QuoteError
from common.markets import Markets

log = logging.getLogger(__name__)

CLOCK_SYSVAR = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
BIN_ARRAYS_EACH_WAY = 3


@dataclass(frozen=True)
class Clock:
    slot: int
    epoch: int
    unix_timestamp: int


def decode_clock(data: bytes, fallback_slot: int) -> Clock:
    if len(data) < 40:
        raise LayoutError(CLOCK_SYSVAR, "Clock sysvar", f"expected 40 bytes, got {len(data)}")
    slot = int.from_bytes(data[0:8], "little")
    epoch = int.from_bytes(data[16:24], "little")
    ts = int.from_bytes(data[32:40], "little", signed=True)
    return Clock(slot or fallback_slot, epoch, ts)


@dataclass
class CpmmState:
    venue = "raydium_cpmm"
    address: Pubkey
    program_id: Pubkey
    pool: cpmm.PoolState
    config: cpmm.AmmConfig
    vault_0: int
    vault_1: int
    mint_0: spl_token.Mint
    mint_1: spl_token.Mint

    @property
    def mints(self) -> tuple[str, str]:
        return str(self.pool.token_0_mint), str(self.pool.token_1_mint)


@dataclass
class DlmmState:
    venue = "meteora_dlmm"
    address: Pubkey
    program_id: Pubkey
    pair: dlmm.LbPair
    bin_arrays: dict[int, dlmm.BinArray]
    mint_x: spl_token.Mint
    mint_y: spl_token.Mint
    reserve_x: int
    reserve_y: int

    @property
    def mints(self) -> tuple[str, str]:
        return str(self.pair.token_x_mint), str(self.pair.token_y_mint)


PoolStateT = CpmmState | DlmmState


@dataclass
class Snapshot:
    slot: int
    clock: Clock
    pools: list[PoolStateT]
    errors: dict[str, str]  # pool address -> why it could not be read
    taken_at: float
    memo: dict[Any, Any] = field(default_factory=dict)  # per-snapshot quote cache

    def pools_for(self, mint_a: str, mint_b: str) -> list[PoolStateT]:
        pair = {mint_a, mint_b}
        return [p for p in self.pools if set(p.mints) == pair]


@dataclass(frozen=True)
class _Static:
    """What a pool's own account tells us about the other accounts it needs."""

    venue: str
    address: Pubkey
    program_id: Pubkey
    extra: tuple[Pubkey, ...]  # accounts read every refresh besides the pool itself


class PoolBook:
    def __init__(
        self, chain: ChainClient, markets: Markets, refresh_s: float = 0.4, renew_ahead: float = 0.25
    ) -> None:
        """`renew_ahead`: the share of a snapshot's lifetime, at its end, in which a quote starts
        the next read (CACHE_RENEW_AHEAD, as the chain client renews its caches): steady traffic
        finds the pools read already. 0: read when expired."""
        self.chain = chain
        self.markets = markets
        self.refresh_s = refresh_s
        self.renew_ahead = renew_ahead
        self._static: dict[Pubkey, _Static] = {}
        self._bin_indexes: dict[Pubkey, set[int]] = {}
        self._snapshot: Snapshot | None = None
        self._refreshing: asyncio.Future[Snapshot] | None = None
        self.refreshes = 0
        # Pools found on chain after start (WatchPools), read like the markets file's pools.
        self._found: dict[Pubkey, str] = {}
        self._generation = 0  # bumped when pools are added: a refresh begun before is not kept

    def add_pools(self, pools: Iterable[tuple[str, Pubkey]]) -> int:
        """Pools found on chain at runtime (venue, address): every snapshot from the next refresh
        on reads them, and the next `snapshot()` refreshes at once. Returns how many were new."""
        known = {Pubkey.from_string(p.address) for p in self.markets.pools}
        new = 0
        for venue, address in pools:
            if address not in known and address not in self._found:
                self._found[address] = venue
                new += 1
        if new:
            self._generation += 1
            self._snapshot = None
        return new

    def expire(self) -> None:
        """The next `snapshot()` reads the chain again (a watched pool waits for its open time)."""
        self._snapshot = None

    def _pool_refs(self) -> dict[Pubkey, str]:
        refs = {Pubkey.from_string(p.address): p.venue for p in self.markets.pools}
        refs.update(self._found)
        return refs

    def pairs(self) -> set[frozenset[str]]:
        return {frozenset(p.mints) for p in (self._snapshot.pools if self._snapshot else [])}

    async def snapshot(self) -> Snapshot:
        """The pools as read at most `refresh_s` ago. One served in the last `renew_ahead` of
        that starts the next read in the background, so that steady traffic never waits for one."""
        snap = self._snapshot
        if snap is not None:
            age = time.monotonic() - snap.taken_at
            if age < self.refresh_s:
                if self.renew_ahead and age >= self.refresh_s * (1 - self.renew_ahead):
                    self._start_refresh()
                return snap
        return await asyncio.shield(self._start_refresh())

    def _start_refresh(self) -> asyncio.Future[Snapshot]:
        if self._refreshing is None:
            generation = self._generation
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(lambda fut: self._refresh_done(fut, generation))
        return self._refreshing

    def _refresh_done(self, fut: asyncio.Future[Snapshot], generation: int) -> None:
        self._refreshing = None
        if not fut.cancelled() and fut.exception() is None and generation == self._generation:
            self._snapshot = fut.result()

    async def _discover(self) -> None:
        venues = self._pool_refs()
        unknown = [address for address in venues if address not in self._static]
        if not unknown:
            return
        _, accounts = await self.chain.get_multiple_accounts(unknown, max_age_s=0)
        for address, account in zip(unknown, accounts, strict=True):
            venue = venues[address]
            program_id = self.markets.program_id(venue)
            if account is None:
                log.warning("pool account not found", extra={"pool": str(address), "venue": venue})
                continue
            extra: tuple[Pubkey, ...]
            try:
                if venue == "raydium_cpmm":
                    pool = cpmm.decode_pool_state(address, account.owner, account.data, program_id)
                    extra = (
                        pool.amm_config,
                        pool.token_0_vault,
                        pool.token_1_vault,
                        pool.token_0_mint,
                        pool.token_1_mint,
                    )
                else:
                    pair = dlmm.decode_lb_pair(address, account.owner, account.data, program_id)
                    extra = (pair.reserve_x, pair.reserve_y, pair.token_x_mint, pair.token_y_mint)
                    self._bin_indexes[address] = wanted_bin_arrays(pair)
            except (LayoutError, QuoteError) as exc:
                log.error("pool account unusable", extra={"pool": str(address), "error": str(exc)})
                continue
            self._static[address] = _Static(venue, address, program_id, extra)

    async def _refresh(self) -> Snapshot:
        try:
            await self._discover()
            snap = await self._read_all()
            # a pair whose active bin moved may need arrays not read yet: read again once
            if any(
                self._bin_indexes.get(p.address, set()) - set(p.bin_arrays)
                for p in snap.pools
                if isinstance(p, DlmmState)
            ):
                snap = await self._read_all()
        except ChainError as exc:
            log.warning("pool refresh failed", extra={"error": str(exc)})
            raise
        self.refreshes += 1
        return snap

    async def _read_all(self) -> Snapshot:
        keys: list[Pubkey] = [CLOCK_SYSVAR]
        for st in self._static.values():
            keys.append(st.address)
            keys.extend(st.extra)
            if st.venue == "meteora_dlmm":
                keys.extend(
                    dlmm.bin_array_pda(st.program_id, st.address, i)
                    for i in sorted(self._bin_indexes.get(st.address, ()))
                )
        slot, accounts = await self.chain.get_multiple_accounts(keys, max_age_s=0)
        by_key: dict[Pubkey, AccountData | None] = dict(zip(keys, accounts, strict=True))
        clock_acc = by_key[CLOCK_SYSVAR]
        clock = (
            decode_clock(clock_acc.data, slot) if clock_acc is not None else Clock(slot, 0, int(time.time()))
        )
        pools: list[PoolStateT] = []
        errors: dict[str, str] = {}
        for st in self._static.values():
            try:
                pools.append(self._decode(st, by_key))
            except (LayoutError, QuoteError, KeyError, ValueError) as exc:
                errors[str(st.address)] = str(exc)
                log.warning("pool state unreadable", extra={"pool": str(st.address), "error": str(exc)})
        return Snapshot(slot, clock, pools, errors, time.monotonic())

    def _decode(self, st: _Static, acc: dict[Pubkey, AccountData | None]) -> PoolStateT:
        state = decode_pool(st.venue, st.address, st.program_id, acc)
        if isinstance(state, DlmmState):
            self._bin_indexes[st.address] = wanted_bin_arrays(state.pair)
        return state


def wanted_bin_arrays(pair: dlmm.LbPair) -> set[int]:
    """The bin arrays a swap either way may need: a few past the active bin's, each direction."""
    wanted = set(dlmm.bin_arrays_for_swap(pair, True, BIN_ARRAYS_EACH_WAY))
    wanted |= set(dlmm.bin_arrays_for_swap(pair, False, BIN_ARRAYS_EACH_WAY))
    return wanted


def decode_pool(
    venue: str, address: Pubkey, program_id: Pubkey, acc: Mapping[Pubkey, AccountData | None]
) -> PoolStateT:
    """Decodes a pool and the accounts it depends on from `acc` (LayoutError names what is wrong)."""

    def need(key: Pubkey, what: str) -> AccountData:
        account = acc.get(key)
        if account is None:
            raise LayoutError(key, what, f"not found (needed by pool {address})")
        return account

    pool_acc = need(address, "pool account")
    if venue == "raydium_cpmm":
        pool = cpmm.decode_pool_state(address, pool_acc.owner, pool_acc.data, program_id)
        cfg_acc = need(pool.amm_config, "amm config")
        config = cpmm.decode_amm_config(pool.amm_config, cfg_acc.owner, cfg_acc.data, program_id)
        v0 = need(pool.token_0_vault, "vault 0")
        v1 = need(pool.token_1_vault, "vault 1")
        m0 = need(pool.token_0_mint, "mint 0")
        m1 = need(pool.token_1_mint, "mint 1")
        return CpmmState(
            address,
            program_id,
            pool,
            config,
            spl_token.decode_token_account(pool.token_0_vault, v0.owner, v0.data).amount,
            spl_token.decode_token_account(pool.token_1_vault, v1.owner, v1.data).amount,
            spl_token.decode_mint(pool.token_0_mint, m0.owner, m0.data),
            spl_token.decode_mint(pool.token_1_mint, m1.owner, m1.data),
        )
    pair = dlmm.decode_lb_pair(address, pool_acc.owner, pool_acc.data, program_id)
    arrays: dict[int, dlmm.BinArray] = {}
    for index in sorted(wanted_bin_arrays(pair)):
        key = dlmm.bin_array_pda(program_id, address, index)
        account = acc.get(key)
        if account is not None:
            arrays[index] = dlmm.decode_bin_array(key, account.owner, account.data, program_id)
    rx = need(pair.reserve_x, "reserve x")
    ry = need(pair.reserve_y, "reserve y")
    mx = need(pair.token_x_mint, "mint x")
    my = need(pair.token_y_mint, "mint y")
    return DlmmState(
        address,
        program_id,
        pair,
        arrays,
        spl_token.decode_mint(pair.token_x_mint, mx.owner, mx.data),
        spl_token.decode_mint(pair.token_y_mint, my.owner, my.data),
        spl_token.decode_token_account(pair.reserve_x, rx.owner, rx.data).amount,
        spl_token.decode_token_account(pair.reserve_y, ry.owner, ry.data).amount,
    )
