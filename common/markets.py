"""The markets file: program ids, tokens and pools of one cluster (see DESIGN.md, "Chains")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

VENUES = ("raydium_cpmm", "meteora_dlmm")


class MarketsError(ValueError):
    """The markets file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int


@dataclass(frozen=True)
class PoolRef:
    venue: str
    address: str


@dataclass(frozen=True)
class Markets:
    cluster: str
    programs: dict[str, str]
    tokens: tuple[Token, ...]
    pools: tuple[PoolRef, ...]

    def token(self, symbol_or_mint: str) -> Token | None:
        """Finds a token by symbol (case-insensitive) or by mint address."""
        key = symbol_or_mint.strip()
        for token in self.tokens:
            if token.mint == key or token.symbol.upper() == key.upper():
                return token
        return None

    def by_mint(self, mint: str) -> Token | None:
        for token in self.tokens:
            if token.mint == mint:
                return token
        return None

    def program_id(self, venue: str) -> Pubkey:
        return Pubkey.from_string(self.programs[venue])

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "programs": dict(self.programs),
            "tokens": [{"symbol": t.symbol, "mint": t.mint, "decimals": t.decimals} for t in self.tokens],
            "pools": [{"venue": p.venue, "address": p.address} for p in self.pools],
        }


def _pubkey(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MarketsError(f"{where}: expected a base58 address")
    try:
        Pubkey.from_string(value)
    except ValueError:
        raise MarketsError(f"{where}: {value!r} is not a valid address") from None
    return value


def parse_markets(doc: Any, source: str = "markets") -> Markets:
    """Validates a decoded markets document."""
    if not isinstance(doc, dict):
        raise MarketsError(f"{source}: expected a JSON object")
    cluster = doc.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise MarketsError(f"{source}: cluster: expected a non-empty string")
    programs_raw = doc.get("programs")
    if not isinstance(programs_raw, dict):
        raise MarketsError(f"{source}: programs: expected an object of venue → program id")
    programs: dict[str, str] = {}
    for venue, pid in programs_raw.items():
        if venue not in VENUES:
            raise MarketsError(f"{source}: programs.{venue}: unknown venue (known: {', '.join(VENUES)})")
        programs[venue] = _pubkey(pid, f"{source}: programs.{venue}")
    tokens: list[Token] = []
    for i, t in enumerate(doc.get("tokens") or []):
        where = f"{source}: tokens[{i}]"
        if not isinstance(t, dict):
            raise MarketsError(f"{where}: expected an object")
        symbol = t.get("symbol")
        decimals = t.get("decimals")
        if not isinstance(symbol, str) or not symbol or len(symbol) > 16:
            raise MarketsError(f"{where}.symbol: expected 1-16 characters")
        if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 18:
            raise MarketsError(f"{where}.decimals: expected an integer 0..18")
        tokens.append(Token(symbol, _pubkey(t.get("mint"), f"{where}.mint"), decimals))
    if not tokens:
        raise MarketsError(f"{source}: tokens: at least one token is required")
    if len({t.symbol.upper() for t in tokens}) != len(tokens) or len({t.mint for t in tokens}) != len(tokens):
        raise MarketsError(f"{source}: tokens: symbols and mints must be unique")
    pools: list[PoolRef] = []
    for i, p in enumerate(doc.get("pools") or []):
        where = f"{source}: pools[{i}]"
        if not isinstance(p, dict):
            raise MarketsError(f"{where}: expected an object")
        venue = p.get("venue")
        if not isinstance(venue, str) or venue not in programs:
            raise MarketsError(f"{where}.venue: {venue!r} has no program id in programs")
        pools.append(PoolRef(venue, _pubkey(p.get("address"), f"{where}.address")))
    return Markets(cluster, programs, tuple(tokens), tuple(pools))


def load_markets(path: Path) -> Markets:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MarketsError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise MarketsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_markets(doc, str(path))
