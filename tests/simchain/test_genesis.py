from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import decode_token_account
from common.markets import load_markets
from common.settings import REPO_ROOT
from simchain.genesis import build_genesis, main, render

MARKETS = REPO_ROOT / "markets" / "sim.json"


def test_committed_markets_file_is_the_generated_one() -> None:
    programs = load_markets(MARKETS).programs
    assert render(build_genesis(programs).markets_doc()) == MARKETS.read_text()


def test_genesis_writer_reproduces_the_file(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    programs = load_markets(MARKETS).programs
    argv = [
        "--write",
        str(out),
        "--raydium-cpmm",
        programs["raydium_cpmm"],
        "--meteora-dlmm",
        programs["meteora_dlmm"],
    ]
    assert main(argv) == 0
    assert out.read_text() == MARKETS.read_text()
    assert main(["--write", str(out)]) == 0  # program ids taken from the file being rewritten
    assert out.read_text() == MARKETS.read_text()
    assert main(["--write", str(tmp_path / "new.json")]) == 2  # no program ids anywhere


def test_program_ids_are_parameters() -> None:
    a = build_genesis({"raydium_cpmm": str(Pubkey.new_unique()), "meteora_dlmm": str(Pubkey.new_unique())})
    b = build_genesis(load_markets(MARKETS).programs)
    assert a.markets_doc()["tokens"] == b.markets_doc()["tokens"]
    assert {p.address for p in a.pools}.isdisjoint({p.address for p in b.pools})


def test_pool_prices_and_spread() -> None:
    markets = load_markets(MARKETS)
    genesis = build_genesis(markets.programs)
    accounts = genesis.accounts
    cpmm_id = markets.program_id("raydium_cpmm")
    dlmm_id = markets.program_id("meteora_dlmm")
    prices = {}
    for p in genesis.pools:
        acct = accounts[p.address]
        if p.venue == "raydium_cpmm":
            state = cpmm.decode_pool_state(p.address, acct.owner, acct.data, cpmm_id)
            v0 = accounts[state.token_0_vault]
            v1 = accounts[state.token_1_vault]
            a0 = decode_token_account(state.token_0_vault, v0.owner, v0.data).amount
            a1 = decode_token_account(state.token_1_vault, v1.owner, v1.data).amount
            base_symbol, quote_symbol = p.name.split("/")
            base = next(t for t in genesis.tokens if t.symbol == base_symbol)
            quote = next(t for t in genesis.tokens if t.symbol == quote_symbol)
            raw = Fraction(a1, a0) if state.token_0_mint == base.mint else Fraction(a0, a1)
            prices[(p.venue, p.name)] = raw * 10**base.decimals / 10**quote.decimals
        else:
            pair = dlmm.decode_lb_pair(p.address, acct.owner, acct.data, dlmm_id)
            mx = next(t for t in genesis.tokens if t.mint == pair.token_x_mint)
            my = next(t for t in genesis.tokens if t.mint == pair.token_y_mint)
            q64 = dlmm.get_price_from_id(pair.active_id, pair.bin_step)
            prices[(p.venue, p.name)] = Fraction(q64, 1 << 64) * 10**mx.decimals / 10**my.decimals
    assert prices[("raydium_cpmm", "SOL/USDC")] == 150
    assert abs(prices[("meteora_dlmm", "SOL/USDC")] - Fraction("150.45")) < Fraction("0.02")
    assert prices[("raydium_cpmm", "SOL/USDT")] == Fraction("149.90")
    assert abs(prices[("meteora_dlmm", "SOL/USDT")] - Fraction("150.20")) < Fraction("0.02")
    assert abs(prices[("meteora_dlmm", "USDT/USDC")] - Fraction("1.0001")) < Fraction("0.0001")
