"""Pool discovery by getProgramAccounts: the filters sit at the real accounts' offsets, and against
the simulated chain's genesis discovery finds exactly its pools, through the client and through
the `python -m router_svc.discover` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from common.chain import ChainClient, DataSize, Memcmp
from common.markets import Markets, load_markets
from common.settings import REPO_ROOT, load_settings
from router_svc.discovery import discover_pools, pool_filters, rank_pools
from simchain.server import Running, start
from tests.common.dex.conftest import CPMM_FIXTURE, DLMM_9T3, DLMM_B5, load_account, pools

SIM_MARKETS = REPO_ROOT / "markets" / "sim.json"


def matches(filters: list[Memcmp | DataSize], data: bytes) -> bool:
    """What a node does with the filters."""
    for f in filters:
        if isinstance(f, DataSize):
            if len(data) != f.size:
                return False
        elif data[f.offset : f.offset + len(f.data)] != f.data:
            return False
    return True


@pytest.mark.parametrize("fixture_id", [CPMM_FIXTURE, DLMM_B5, DLMM_9T3])
def test_filters_match_the_real_pool_accounts(fixture_id: str) -> None:
    """The fixture pools are accounts read from mainnet (CPMM) and from the DLMM SDK's tests: one
    filter set matches each, in the pool's mint order, and neither matches another pair."""
    meta = pools()[fixture_id]
    role = "pool_state" if meta["venue"] == "raydium_cpmm" else "lb_pair"
    account = load_account(meta["accounts"][role]["file"])
    cpmm = meta["venue"] == "raydium_cpmm"
    keys = ("token_0_mint", "token_1_mint") if cpmm else ("token_x_mint", "token_y_mint")
    first, second = (Pubkey.from_string(meta[k]) for k in keys)
    pool_order, reversed_order = pool_filters(meta["venue"], first, second)
    assert matches(pool_order, account.data)
    assert not matches(reversed_order, account.data)
    assert pool_filters(meta["venue"], second, first)[1] == pool_order  # either way round, both asked
    other = Pubkey.new_unique()
    assert not any(matches(f, account.data) for f in pool_filters(meta["venue"], first, other))
    assert len(pool_order) <= 4  # what nodes accept


def test_unknown_venue_is_refused() -> None:
    with pytest.raises(ValueError, match="venue"):
        pool_filters("orca", Pubkey.new_unique(), Pubkey.new_unique())


@pytest.fixture
async def sim() -> AsyncIterator[Running]:
    settings = load_settings(
        {"SIM_PORT": "0", "SIM_SLOT_MS": "60000", "LOG_LEVEL": "warning"}, dotenv=Path("/nonexistent")
    )
    running = await start(settings, unix_start=1_800_000_000, seed=3)
    try:
        yield running
    finally:
        await running.stop()


def genesis_pools(markets: Markets, name: str) -> set[tuple[str, str]]:
    doc = json.loads(SIM_MARKETS.read_text())
    names = {name, "/".join(reversed(name.split("/")))}
    return {(p["venue"], p["address"]) for p in doc["pools"] if p["name"] in names}


@pytest.mark.parametrize("pair", ["SOL/USDC", "USDC/SOL", "SOL/USDT", "USDT/USDC"])
async def test_discovery_finds_exactly_the_genesis_pools(sim: Running, pair: str) -> None:
    markets = load_markets(SIM_MARKETS)
    a, b = (markets.token(s) for s in pair.split("/"))
    assert a is not None and b is not None
    mint_a, mint_b = Pubkey.from_string(a.mint), Pubkey.from_string(b.mint)
    async with ChainClient(sim.url) as chain:
        found = await discover_pools(chain, markets.programs, mint_a, mint_b)
        assert {(p.venue, str(p.address)) for p in found} == genesis_pools(markets, pair)
        assert chain.calls["getProgramAccounts"] == 4  # two venues, two mint orders
        ranked = await rank_pools(chain, markets, found, mint_a)
    assert {p.address for p in ranked} == {p.address for p in found}
    assert all(p.reserve_a and p.reserve_b and p.enabled for p in ranked)
    with pytest.raises(ValueError):
        async with ChainClient(sim.url) as chain:
            await discover_pools(chain, markets.programs, mint_a, mint_a)


async def test_rank_keeps_the_deepest_per_venue(sim: Running) -> None:
    markets = load_markets(SIM_MARKETS)
    sol, usdc = (Pubkey.from_string(markets.token(s).mint) for s in ("SOL", "USDC"))  # type: ignore[union-attr]
    async with ChainClient(sim.url) as chain:
        found = await discover_pools(chain, markets.programs, sol, usdc)
        ranked = await rank_pools(chain, markets, found, sol, top=1)
    by_venue = {p.venue: p for p in ranked}
    assert set(by_venue) == {"raydium_cpmm", "meteora_dlmm"}
    # genesis: CPMM 50,000 SOL + 7,500,000 USDC; DLMM 25,000 SOL + 3,761,250 USDC
    assert by_venue["raydium_cpmm"].reserve_a == 50_000 * 10**9
    assert by_venue["raydium_cpmm"].reserve_b == 7_500_000 * 10**6


async def run_discover(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "router_svc.discover",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAIN", "SOLANA_", "MARKETS_", "RPC_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


async def test_discover_command_writes_a_markets_file(sim: Running, tmp_path: Path) -> None:
    base = json.loads(SIM_MARKETS.read_text())
    base["pools"] = []
    base["note"] = "kept as it is"
    start_file = tmp_path / "start.json"
    start_file.write_text(json.dumps(base))
    out_file = tmp_path / "out.json"
    code, stdout, stderr = await run_discover(
        "--markets",
        str(start_file),
        "--pair",
        "SOL/USDC",
        "--pair",
        "USDT/USDC",
        "--write",
        str(out_file),
        env=child_env(CHAIN="custom", SOLANA_RPC_URL=sim.url, MARKETS_FILE=str(start_file)),
        cwd=tmp_path,
    )
    assert code == 0, stderr
    assert stdout == ""
    assert "SOL/USDC: 2 pool(s) on chain, 2 kept" in stderr and f"wrote {out_file}" in stderr
    written = load_markets(out_file)  # the documented format
    markets = load_markets(SIM_MARKETS)
    assert {(p.venue, p.address) for p in written.pools} == (
        genesis_pools(markets, "SOL/USDC") | genesis_pools(markets, "USDT/USDC")
    )
    doc = json.loads(out_file.read_text())
    assert doc["note"] == "kept as it is" and doc["tokens"] == base["tokens"]
    for pool in doc["pools"]:
        assert pool["name"] in ("SOL/USDC", "USDT/USDC") and "getProgramAccounts" in pool["source"]

    # run again on its own output: nothing is added twice
    code, _, stderr = await run_discover(
        "--markets",
        str(out_file),
        "--pair",
        "SOL/USDC",
        "--write",
        str(out_file),
        "--rpc",
        sim.url,
        env=child_env(),
        cwd=tmp_path,
    )
    assert code == 0, stderr
    assert len(load_markets(out_file).pools) == 3


async def test_discover_command_fails_with_one_line(sim: Running, tmp_path: Path) -> None:
    code, stdout, stderr = await run_discover(
        "--markets", str(SIM_MARKETS), "--pair", "SOL/BONK", "--rpc", sim.url, env=child_env(), cwd=tmp_path
    )
    assert code == 1 and stdout == ""
    assert stderr.strip().count("\n") == 0 and "BONK is not a token of the markets file" in stderr
