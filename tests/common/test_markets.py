"""The shipped markets files load, and say what the issue and DESIGN.md say they must."""

from __future__ import annotations

import json

import pytest

from common.markets import load_markets
from common.settings import REPO_ROOT

MARKETS = REPO_ROOT / "markets"
SOL = "So11111111111111111111111111111111111111112"
DLMM = "LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo"
MAINNET_CPMM = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
DEVNET_CPMM = "DRaycpLY18LhpbydsBWbVJtxpNv9oXPgjRSfpF2bWpYb"
DEVNET_USDC = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"


@pytest.mark.parametrize("path", sorted(MARKETS.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_markets_file_loads(path: object) -> None:
    markets = load_markets(path)  # type: ignore[arg-type]
    assert markets.cluster == path.stem  # type: ignore[attr-defined]
    assert set(markets.programs) == {"raydium_cpmm", "meteora_dlmm"}
    assert markets.token("SOL") is not None and markets.token("SOL").mint == SOL  # type: ignore[union-attr]


def test_the_clusters_files_exist() -> None:
    assert {p.stem for p in MARKETS.glob("*.json")} >= {"sim", "devnet", "mainnet-beta"}


def test_devnet() -> None:
    markets = load_markets(MARKETS / "devnet.json")
    assert markets.programs == {"raydium_cpmm": DEVNET_CPMM, "meteora_dlmm": DLMM}
    usdc = markets.token("USDC")
    assert usdc is not None and (usdc.mint, usdc.decimals) == (DEVNET_USDC, 6)


def test_mainnet_beta() -> None:
    markets = load_markets(MARKETS / "mainnet-beta.json")
    assert markets.programs == {"raydium_cpmm": MAINNET_CPMM, "meteora_dlmm": DLMM}
    tokens = {t.symbol: (t.mint, t.decimals) for t in markets.tokens}
    assert tokens == {
        "SOL": (SOL, 9),
        "USDC": ("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
        "USDT": ("Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
    }


@pytest.mark.parametrize("name", ["devnet.json", "mainnet-beta.json"])
def test_real_cluster_pools_say_where_they_come_from(name: str) -> None:
    for pool in json.loads((MARKETS / name).read_text())["pools"]:
        assert pool.get("source"), f"{name}: pool {pool['address']} has no source"
        assert pool.get("name")
