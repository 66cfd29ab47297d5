"""`python -m router_svc.discover`: find a pair's pools on chain and write them into a markets file.

    CHAIN=devnet python -m router_svc.discover --markets markets/devnet.json --pair SOL/USDC \\
        --write markets/devnet.json

Reads the program ids and tokens of `--markets` (default: the cluster's markets file), asks the
RPC node (SOLANA_RPC_URL, or the cluster's public endpoint; `--rpc` overrides) for every pool of
each `--pair` on each venue (`router_svc.discovery`), keeps the `--top` deepest live pools per
venue, and writes the markets file (`--write`; without it, prints it) with those pools added after
the ones it already lists. Every other key of the file is kept as it was. Exit status 1 with one
line on stderr when something is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

from common.chain import ChainClient, ChainError
from common.markets import Markets, MarketsError, Token, parse_markets
from common.settings import Settings, load_settings
from router_svc.discovery import FoundPool, discover_pools, merge_pools, rank_pools


class DiscoveryFailed(Exception):
    """Discovery cannot proceed; the message says why."""


def _pair(markets: Markets, text: str) -> tuple[Token, Token]:
    first, sep, second = text.partition("/")
    if not sep or not first or not second:
        raise DiscoveryFailed(f"--pair {text!r}: expected A/B, e.g. SOL/USDC")
    tokens = []
    for part in (first, second):
        token = markets.token(part)
        if token is None:
            raise DiscoveryFailed(
                f'--pair {text!r}: {part} is not a token of the markets file (add it to "tokens" first)'
            )
        tokens.append(token)
    if tokens[0].mint == tokens[1].mint:
        raise DiscoveryFailed(f"--pair {text!r}: the two tokens are the same")
    return tokens[0], tokens[1]


def _entry(pool: FoundPool, name: str, cluster: str) -> dict[str, Any]:
    return {
        "venue": pool.venue,
        "address": str(pool.address),
        "name": name,
        "source": f"found by `python -m router_svc.discover` (getProgramAccounts on {cluster})",
    }


async def discover(
    chain: ChainClient, doc: dict[str, Any], markets: Markets, pairs: list[str], top: int
) -> tuple[dict[str, Any], list[str]]:
    """The markets document with the pairs' pools added, and one report line per pool kept."""
    found_entries: list[dict[str, Any]] = []
    report: list[str] = []
    for text in pairs:
        token_a, token_b = _pair(markets, text)
        name = f"{token_a.symbol}/{token_b.symbol}"
        mint_a, mint_b = Pubkey.from_string(token_a.mint), Pubkey.from_string(token_b.mint)
        found = await discover_pools(chain, markets.programs, mint_a, mint_b)
        ranked = await rank_pools(chain, markets, found, mint_a, top)
        report.append(f"{name}: {len(found)} pool(s) on chain, {len(ranked)} kept")
        for pool in ranked:
            report.append(
                f"  {pool.venue:<13} {pool.address}  {token_a.symbol} {pool.reserve_a}  "
                f"{token_b.symbol} {pool.reserve_b} (base units)"
            )
            found_entries.append(_entry(pool, name, markets.cluster))
    out = dict(doc)
    out["pools"] = merge_pools(doc.get("pools") or [], found_entries)
    parse_markets(out, "the markets file written")  # what is written must load
    return out, report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m router_svc.discover",
        description="Find a token pair's Raydium CPMM and Meteora DLMM pools on chain and write them "
        "into a markets file.",
    )
    parser.add_argument(
        "--markets",
        type=Path,
        help="markets file to start from (default: MARKETS_FILE or markets/<CHAIN>.json)",
    )
    parser.add_argument(
        "--pair",
        action="append",
        required=True,
        help="A/B by symbol of the markets file, e.g. SOL/USDC; may be repeated",
    )
    parser.add_argument(
        "--write", type=Path, help="file to write (may be the --markets file); default: print to stdout"
    )
    parser.add_argument("--rpc", help="JSON-RPC URL (default: SOLANA_RPC_URL or the cluster's public one)")
    parser.add_argument(
        "--top",
        type=int,
        default=3,
        help="keep the N deepest live pools per venue and pair (0: all); default 3",
    )
    return parser


PUBLIC_RPC = {
    "devnet": "https://api.devnet.solana.com",
    "mainnet-beta": "https://api.mainnet-beta.solana.com",
}


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.markets or settings.markets_path
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiscoveryFailed(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DiscoveryFailed(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    markets = parse_markets(doc, str(path))
    # A one-off read, so the cluster's public endpoint is a fine default here (the engine itself
    # never implies an RPC URL: common.settings.Settings.rpc_url).
    rpc = args.rpc or (not settings.solana_rpc_url and PUBLIC_RPC.get(settings.chain)) or None
    chain = (
        ChainClient(
            rpc,
            timeout_s=max(settings.rpc_timeout_s, 60.0),
            commitment=settings.commitment,
            batch_max=settings.rpc_batch_max,
        )
        if rpc
        # getProgramAccounts takes seconds on a busy cluster: a longer deadline than a quote's
        else ChainClient.from_settings(settings, timeout_s=max(settings.rpc_timeout_s, 60.0))
    )
    try:
        out, report = await discover(chain, doc, markets, args.pair, max(0, args.top))
    finally:
        await chain.close()
    text = json.dumps(out, indent=2) + "\n"
    if args.write:
        args.write.write_text(text)
        report.append(f"wrote {args.write}")
    else:
        sys.stdout.write(text)
    for line in report:
        print(line, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    try:
        return asyncio.run(_run(settings, args))
    except (DiscoveryFailed, MarketsError, ValueError) as exc:
        print(f"discover: {exc}", file=sys.stderr)
    except ChainError as exc:
        print(f"discover: RPC failed: {exc.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
